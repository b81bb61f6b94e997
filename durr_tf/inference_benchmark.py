"""End-to-end restoration speed on this machine: prints a table and writes JSON.

    python -m durr_tf.inference_benchmark --out docs/results/inference.json \\
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
"""

import os
import platform
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from durr_tf import export, model, policies, tasks, unroll
from durr_tf.restore import Restorer
from durr_tf.speed import median_seconds, print_table, report


def test_image(height, width, sigma=50.0, seed=0):
    y, x = np.mgrid[:height, :width]
    clean = 0.5 + 0.25 * np.sin(x / 9.0) * np.cos(y / 13.0)
    noise = np.random.default_rng(seed).normal(0, sigma / 255.0, clean.shape)
    return (clean + noise).astype(np.float32)[..., None]


def measure(task, restorer_name, sizes, stops, repeats, max_steps=unroll.DEFAULT_MAX_STEPS):
    """Rows of {size, stop, runner, steps, seconds, images_per_s, ms_per_megapixel, ms_per_step}."""
    rows = []
    cell = model.load_restorer(restorer_name)[0]
    cell_bfloat16 = model.load_restorer(restorer_name, "mixed_bfloat16")[0]
    for stop in stops:
        rule = policies.parse_stop_rule(stop, task.name)
        runners = {"restorer": Restorer(cell, rule, max_steps, task.color_mode),
                   "restorer bfloat16": Restorer(cell_bfloat16, rule, max_steps, task.color_mode)}
        with tempfile.TemporaryDirectory() as folder:
            served = tf.saved_model.load(export.export(cell, rule, folder, 1, max_steps,
                                                       task.color_mode))
            signature = served.signatures["serving_default"]
            runners["SavedModel"] = lambda image: (
                None, signature(images=tf.constant(image[None]))["steps"].numpy())
            for height, width in sizes:
                image = test_image(height, width)
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


def rule_cost(task, restorer_name, sizes, stops, repeats):
    """Rows of {size, stop, restorer_step_ms, rule_ms, rule_share}: one Euler step and one call
    of the rule (after its initial state), each timed `repeats` times, interleaved."""
    cell = model.load_restorer(restorer_name)[0]
    step = tf.function(lambda x: unroll.euler_step(cell, x))
    rows = []
    for stop in stops:
        rule = policies.parse_stop_rule(stop, task.name)
        call = tf.function(lambda x, state: rule(tf.constant(1), x, state))
        for height, width in sizes:
            x = tf.constant(test_image(height, width)[None])
            state = rule.initial_state(x)
            timed = {"step": lambda: step(x).numpy(),
                     "rule": lambda: tf.nest.map_structure(np.asarray, call(x, state))}
            times = {name: [] for name in timed}
            for name, run in timed.items():
                run()  # trace and warm up
            for _ in range(repeats):
                for name, run in timed.items():
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
            step_ms, rule_ms = (1000 * float(np.median(times[name])) for name in ("step", "rule"))
            rows.append({"size": f"{width}×{height}", "stop": stop, "restorer_step_ms": step_ms,
                         "rule_ms": rule_ms, "rule_share": rule_ms / step_ms})
    return rows


FLAGS = flags.FLAGS


def define_flags():
    """Declares the command-line flags (only when run as a program, so modules import cleanly)."""
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.")
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).")
    flags.DEFINE_list("stop", ["fixed:10", "estimate"], "Stop rules to time (dqn:PATH too).")
    flags.DEFINE_list("sizes", ["321x481", "2048x2048"], "Image sizes, HEIGHTxWIDTH.")
    flags.DEFINE_integer("repeats", 3, "Timed repetitions per measurement.")
    flags.DEFINE_integer("cost_repeats", 30, "Interleaved repetitions of the rule-cost timing.")
    flags.DEFINE_string("out", "inference.json", "JSON output path.")


def main(argv):
    del argv
    task = tasks.get(FLAGS.task)
    sizes = [tuple(int(v) for v in size.split("x")) for size in FLAGS.sizes]
    rows = measure(task, FLAGS.restorer or task.name, sizes, FLAGS.stop, FLAGS.repeats)
    info = {"machine": platform.machine(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "gpu": [d.name for d in tf.config.list_physical_devices("GPU")]}
    columns = {"size": lambda r: r["size"], "stop": lambda r: r["stop"],
               "runner": lambda r: r["runner"], "steps": lambda r: str(r["steps"]),
               "images/s": lambda r: f"{r['images_per_s']:.2f}",
               "ms per megapixel": lambda r: f"{r['ms_per_megapixel']:.0f}",
               "ms per step": lambda r: f"{r['ms_per_step']:.0f}"}
    costs = rule_cost(task, FLAGS.restorer or task.name, sizes, FLAGS.stop, FLAGS.cost_repeats)
    report(rows, columns, info, FLAGS.out, {"rule_cost": costs})
    print()
    print_table(costs, {"size": lambda r: r["size"], "stop": lambda r: r["stop"],
                        "one restorer step (ms)": lambda r: f"{r['restorer_step_ms']:.1f}",
                        "one rule call (ms)": lambda r: f"{r['rule_ms']:.2f}",
                        "rule / step": lambda r: f"{100 * r['rule_share']:.1f}%"})


if __name__ == "__main__":
    define_flags()
    app.run(main)
