"""End-to-end restoration speed on this machine: prints a table and writes JSON.

    python -m durr_tf.tools.inference_benchmark --out docs/results/inference.json \\
        [--stop fixed:10,estimate,dqn:runs/dqn_denoise/policy] [--sizes 321x481,2048x2048]

For each image size and stop rule it times a whole restore (all steps and the rule), in
images per second and ms per megapixel, three ways: the Python `Restorer` (what
`durr_tf.restore` runs), the exported SavedModel loaded back (what TF Serving runs), and the
Restorer in mixed bfloat16. Rules that stop at different steps take different times, so the
table also gives the steps taken and the time per step. Medians after a warm-up; run it on an
idle machine. The input is Gaussian noise at σ = 50 on a smooth synthetic image.

A second table times one stop-rule call against one restorer step on the same image (medians
of interleaved calls): the rule's share of each step, which differences between whole restores
resolve only to about 10% here.

    python -m durr_tf.tools.inference_benchmark --versus_dncnn --images 8 --sigmas 25,50,75 \\
        --stop learned,estimate --precisions float32,auto --out docs/results/inference_vs_dncnn.json

times instead the exported SavedModel (one per stop rule and precision) against DnCNN-B, rebuilt
from its released weights (--peers_dir), in the same process on the same noisy images: the first
--images of --set at each σ, with `evaluate`'s noise. Each image is restored `repeats` times by
every runner in turn, and a runner's time at a σ is the sum over the images of its medians; the
ratio to DnCNN-B's time is given per σ and averaged over the σs. The PSNR of each runner on the
same images shows what a faster precision costs.
"""

import os
import platform
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from data import sets
from durr_tf.evaluation import evaluator, metrics, peers
from durr_tf.inference import serving
from durr_tf.core import precision, restorer_io, stop_rules, tasks, unroll
from durr_tf.inference.restorer import Restorer
from durr_tf.tools.timing import median_seconds, print_table, report


def test_image(height, width, channels=1, sigma=50.0, seed=0):
    """A smooth pattern with Gaussian noise, [H,W,channels] float32 (noise drawn per channel)."""
    y, x = np.mgrid[:height, :width]
    clean = 0.5 + 0.25 * np.sin(x / 9.0) * np.cos(y / 13.0)
    noise = np.random.default_rng(seed).normal(0, sigma / 255.0, (height, width, channels))
    return (clean[..., None] + noise).astype(np.float32)


def measure(task, restorer_name, sizes, stops, repeats, max_steps=unroll.DEFAULT_MAX_STEPS):
    """Rows of {size, stop, runner, steps, seconds, images_per_s, ms_per_megapixel, ms_per_step}."""
    rows = []
    cell = restorer_io.load_restorer(restorer_name)[0]
    cell_bfloat16 = restorer_io.load_restorer(restorer_name, "mixed_bfloat16")[0]
    for stop in stops:
        rule = stop_rules.parse_stop_rule(stop, task.name)
        runners = {"restorer": Restorer(cell, rule, max_steps, task.color_mode),
                   "restorer bfloat16": Restorer(cell_bfloat16, rule, max_steps, task.color_mode)}
        with tempfile.TemporaryDirectory() as folder:
            served = tf.saved_model.load(serving.export(cell, rule, folder, 1, max_steps,
                                                       task.color_mode))
            signature = served.signatures["serving_default"]
            runners["SavedModel"] = lambda image: (
                None, signature(images=tf.constant(image[None]))["steps"].numpy())
            for height, width in sizes:
                image = test_image(height, width, task.channels)
                for name, run in runners.items():
                    steps = int(np.max(run(image)[1]))
                    seconds = median_seconds(lambda: run(image), repeats)
                    megapixels = height * width / 1e6
                    rows.append({"size": f"{width}×{height}", "stop": stop, "runner": name,
                                 "steps": steps, "seconds": seconds,
                                 "images_per_s": 1.0 / seconds,
                                 "ms_per_megapixel": 1000 * seconds / megapixels,
                                 "ms_per_step": 1000 * seconds / max(steps, 1)})
    return rows


def interleaved_medians(runs, repeats):
    """{name: median seconds} of `repeats` calls of each of `runs` ({name: function}), called in
    turn so that a change in the machine's load falls on all of them alike."""
    laps = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            laps[name].append(time.perf_counter() - start)
    return {name: float(np.median(times)) for name, times in laps.items()}


def rule_cost(task, restorer_name, sizes, stops, repeats):
    """Rows of {size, stop, restorer_step_ms, rule_ms, rule_share}: one Euler step and one call
    of the rule (after its initial state), each timed `repeats` times, interleaved."""
    cell = restorer_io.load_restorer(restorer_name)[0]
    step = unroll.Stepper(cell)
    rows = []
    for stop in stops:
        rule = stop_rules.parse_stop_rule(stop, task.name)
        call = tf.function(lambda x, state: rule(tf.constant(1), x, state))
        for height, width in sizes:
            x = tf.constant(test_image(height, width, task.channels)[None])
            state = rule.initial_state(x)
            timed = {"step": lambda: step(x).numpy(),
                     "rule": lambda: tf.nest.map_structure(np.asarray, call(x, state))}
            for run in timed.values():
                run()  # trace and warm up
            times = interleaved_medians(timed, repeats)
            step_ms, rule_ms = (1000 * times[name] for name in ("step", "rule"))
            rows.append({"size": f"{width}×{height}", "stop": stop, "restorer_step_ms": step_ms,
                         "rule_ms": rule_ms, "rule_share": rule_ms / step_ms})
    return rows


DNCNN_B = "dncnn_b/GD_Gray_Blind.mat"  # inside the peers folder


def served_restorers(task, restorer_name, stops, precisions, folder):
    """{(stop, precision): the serving_default signature of a SavedModel exported to `folder`}."""
    signatures = {}
    for compute in precisions:
        cell = restorer_io.load_restorer(restorer_name, compute)[0]
        for stop in stops:
            rule = stop_rules.parse_stop_rule(stop, task.name)
            path = serving.export(cell, rule, os.path.join(folder, f"{stop}_{compute}"), 1,
                                 color_mode=task.color_mode)
            signatures[stop, compute] = tf.saved_model.load(path).signatures["serving_default"]
    return signatures


def _served_runner(signature):
    """x [1,H,W,1] -> (restored numpy, steps) through a serving_default signature."""
    def run(x):
        out = signature(images=x)
        return out["restored"].numpy(), int(out["steps"][0])
    return run


def versus_dncnn(task, restorer_name, files, sigmas, stops, precisions, repeats, peers_dir,
                 seed=0):
    """Rows of {sigma, stop, precision, steps, seconds, ms_per_step, dncnn_seconds, ratio, psnr,
    dncnn_psnr}: the SavedModels (`served_restorers`) and DnCNN-B timed on the same noisy `files`
    (see the module docstring); `seconds` and `dncnn_seconds` are sums over the images, `steps`
    and the PSNRs means, and `ms_per_step` includes the stop rule's calls."""
    network = peers.dncnn(os.path.join(peers_dir, DNCNN_B))
    dncnn = tf.function(network, input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32)])
    cleans = [task.read_clean(path) for path in files]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        served = served_restorers(task, restorer_name, stops, precisions, folder)
        runners = {"DnCNN-B": lambda x: (dncnn(x).numpy(), 0)}
        runners.update((key, _served_runner(signature)) for key, signature in served.items())
        for sigma in sigmas:
            degraded = evaluator.degrade_set(task, cleans, sigma, seed)
            times = {name: [] for name in runners}
            steps = {name: [] for name in runners}
            psnrs = {name: [] for name in runners}
            for clean, noisy in zip(cleans, degraded):
                x = tf.constant(noisy[None])
                for name, run in runners.items():  # warm-up, steps and PSNR
                    restored, taken = run(x)
                    steps[name].append(taken)
                    psnrs[name].append(metrics.psnr(restored[0], clean))
                calls = {name: lambda run=run: run(x) for name, run in runners.items()}
                for name, seconds in interleaved_medians(calls, repeats).items():
                    times[name].append(seconds)
            dncnn_seconds = sum(times["DnCNN-B"])
            for (stop, compute) in served:
                seconds = sum(times[stop, compute])
                rows.append({"sigma": sigma, "stop": stop, "precision": compute,
                             "steps": float(np.mean(steps[stop, compute])), "seconds": seconds,
                             "ms_per_step": 1000 * seconds / max(sum(steps[stop, compute]), 1),
                             "dncnn_seconds": dncnn_seconds, "ratio": seconds / dncnn_seconds,
                             "psnr": float(np.mean(psnrs[stop, compute])),
                             "dncnn_psnr": float(np.mean(psnrs["DnCNN-B"]))})
    return rows


def mean_ratios(rows):
    """Rows of {stop, precision, mean_ratio}: each SavedModel's ratio averaged over the σs."""
    keys = dict.fromkeys((r["stop"], r["precision"]) for r in rows)
    return [{"stop": stop, "precision": compute,
             "mean_ratio": float(np.mean([r["ratio"] for r in rows
                                          if (r["stop"], r["precision"]) == (stop, compute)]))}
            for stop, compute in keys]


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).",
                        **into)
    flags.DEFINE_list("stop", [], "Stop rules to time, dqn:PATH too (default: fixed:10, "
                      "estimate and the task's default stop).", **into)
    flags.DEFINE_list("sizes", ["321x481", "2048x2048"], "Image sizes, HEIGHTxWIDTH.", **into)
    flags.DEFINE_integer("repeats", 3, "Timed repetitions per measurement.", **into)
    flags.DEFINE_integer("cost_repeats", 30, "Interleaved repetitions of the rule-cost timing.",
                         **into)
    flags.DEFINE_string("out", "inference.json", "JSON output path.", **into)
    flags.DEFINE_bool("versus_dncnn", False, "Time the SavedModel against DnCNN-B on --set "
                      "instead (see the module docstring).", **into)
    flags.DEFINE_string("set", "BSD68", "Set of clean images for --versus_dncnn.", **into)
    flags.DEFINE_integer("images", 8, "Number of images of --set (its first ones).", **into)
    flags.DEFINE_list("sigmas", ["25", "50", "75"], "Noise levels σ for --versus_dncnn.", **into)
    flags.DEFINE_list("precisions", ["float32", "auto"],
                      "Compute precisions of the SavedModels for --versus_dncnn.", **into)
    flags.DEFINE_string("peers_dir", os.environ.get("DURR_PEERS_DIR", ""),
                        "Folder of the peers' released weights (default: DURR_PEERS_DIR).", **into)


def stops_to_time(task, stops):
    """The stop rules a run times: `stops`, else fixed:10, `estimate` and the task's default
    stop (the learned one where it is the default), each once."""
    return stops or list(dict.fromkeys(["fixed:10", "estimate", task.default_stop]))


def main_versus_dncnn(task, info):
    files = sets.resolve(FLAGS.set)[: FLAGS.images]
    precisions = list(dict.fromkeys(precision.resolve(p) for p in FLAGS.precisions))
    rows = versus_dncnn(task, FLAGS.restorer or task.name, files,
                        [float(s) for s in FLAGS.sigmas], stops_to_time(task, FLAGS.stop),
                        precisions, FLAGS.repeats, FLAGS.peers_dir)
    means = mean_ratios(rows)
    info.update(set=FLAGS.set, images=[os.path.basename(f) for f in files],
                sizes=sorted({"×".join(map(str, task.read_clean(f).shape[1::-1])) for f in files}),
                repeats=FLAGS.repeats, auto_precision=precision.resolve("auto"))
    report(rows, {"σ": lambda r: f"{r['sigma']:g}", "stop": lambda r: r["stop"],
                  "precision": lambda r: r["precision"], "steps": lambda r: f"{r['steps']:.1f}",
                  "SavedModel (ms)": lambda r: f"{1000 * r['seconds']:.0f}",
                  "ms per step": lambda r: f"{r['ms_per_step']:.1f}",
                  "DnCNN-B (ms)": lambda r: f"{1000 * r['dncnn_seconds']:.0f}",
                  "ratio": lambda r: f"{r['ratio']:.2f}×",
                  "PSNR (dB)": lambda r: f"{r['psnr']:.2f}",
                  "DnCNN-B PSNR (dB)": lambda r: f"{r['dncnn_psnr']:.2f}"},
           info, FLAGS.out, {"mean_ratio": means})
    print()
    print_table(means, {"stop": lambda r: r["stop"], "precision": lambda r: r["precision"],
                        f"mean ratio over σ {','.join(FLAGS.sigmas)}":
                        lambda r: f"{r['mean_ratio']:.2f}×"})


def main(argv):
    del argv
    task = tasks.get(FLAGS.task)
    info = {"machine": platform.machine(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "gpu": [d.name for d in tf.config.list_physical_devices("GPU")]}
    if FLAGS.versus_dncnn:
        main_versus_dncnn(task, info)
        return
    sizes = [tuple(int(v) for v in size.split("x")) for size in FLAGS.sizes]
    stops = stops_to_time(task, FLAGS.stop)
    rows = measure(task, FLAGS.restorer or task.name, sizes, stops, FLAGS.repeats)
    columns = {"size": lambda r: r["size"], "stop": lambda r: r["stop"],
               "runner": lambda r: r["runner"], "steps": lambda r: str(r["steps"]),
               "images/s": lambda r: f"{r['images_per_s']:.2f}",
               "ms per megapixel": lambda r: f"{r['ms_per_megapixel']:.0f}",
               "ms per step": lambda r: f"{r['ms_per_step']:.0f}"}
    costs = rule_cost(task, FLAGS.restorer or task.name, sizes, stops, FLAGS.cost_repeats)
    report(rows, columns, info, FLAGS.out, {"rule_cost": costs})
    print()
    print_table(costs, {"size": lambda r: r["size"], "stop": lambda r: r["stop"],
                        "one restorer step (ms)": lambda r: f"{r['restorer_step_ms']:.1f}",
                        "one rule call (ms)": lambda r: f"{r['rule_ms']:.2f}",
                        "rule / step": lambda r: f"{100 * r['rule_share']:.1f}%"})


if __name__ == "__main__":
    define_flags()
    app.run(main)
