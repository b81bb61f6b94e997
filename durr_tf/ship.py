"""Turns a finished training run into a shipped model: weights + JSON card in durr_tf/pretrained.

    python -m durr_tf.ship --run_dir runs/denoise_gray --results results/bsd68/results.json

The card records the training commands (rebuilt from the run's config.json and the learning
rate phases in its TensorBoard log, so a manual drop on resume is part of the recipe), the data, the
steps and training time, the machine, the evaluation table it was measured with (on the task's
benchmark set), and a small `check` (oracle PSNR of the set's first images) that the test
suite recomputes.
"""

import dataclasses
import json
import math
import os
import platform

from absl import app, flags

from data import sets
from durr_tf import evaluate, model, tasks, trainer, training_curve

CHECK_IMAGES = 2


RUN_CONTROL = ("widths", "train_levels", "steps", "max_minutes", "set_learning_rate")


def learning_rate_phases(rate_points):
    """[(last_step, rate)] for each stretch of constant learning rate in the logged scalar."""
    phases = []
    for step, _, logged in rate_points:
        rate = float(f"{logged:.6g}")  # the float32 log of 1e-4 is 9.99999974e-05
        if phases and math.isclose(phases[-1][1], rate, rel_tol=1e-6):
            phases[-1] = (step, phases[-1][1])
        else:
            phases.append((step, rate))
    return phases


def training_command(config, phases=()):
    """The train_restorer command lines that reproduce a run: one per learning-rate phase.

    Flags that only steer a run (time budget, a manual rate) are rebuilt from the phases: the
    first runs to its last step, each later one resumes with --set_learning_rate.
    """
    defaults = dataclasses.asdict(trainer.TrainConfig())
    base = ["python -m durr_tf.train_restorer"]
    for key, value in config.items():
        if key in defaults and value != defaults[key] and key not in RUN_CONTROL:
            base.append(f"--{key} {value}")
    if not phases:
        return " ".join(base)
    commands = []
    for i, (last_step, rate) in enumerate(phases):
        extra = [f"--steps {last_step}"] + ([f"--set_learning_rate {rate:g}"] if i else [])
        commands.append(" ".join(base + extra))
    return " && ".join(commands)


def machine():
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        cpu = f"{names[0] if names else 'CPU'} ({os.cpu_count()} cores available)"
    return f"{platform.system()} {platform.machine()}, {cpu}, no GPU"


def ship(run_dir, results_path, name, out_dir=None):
    config = json.load(open(os.path.join(run_dir, "config.json")))
    run_card = model.read_card(os.path.join(run_dir, "restorer"))
    results = json.load(open(results_path))
    scalars = training_curve.read_scalars(os.path.join(run_dir, "train"))
    hours = training_curve.active_hours(scalars.get("loss", []))
    phases = learning_rate_phases(scalars.get("learning_rate", []))
    out_dir = out_dir or os.path.dirname(model.pretrained_prefix("denoise"))
    prefix = os.path.join(out_dir, name)
    cell, _ = model.load_restorer(os.path.join(run_dir, "restorer"))
    task = tasks.get(config["task"])
    files = sets.resolve(task.benchmark_set)[:CHECK_IMAGES]
    check_levels = (task.train_levels[0], task.eval_levels[-1])  # one seen, one unseen level
    check = evaluate.evaluate(cell, task, files, check_levels, ["oracle"])
    card = {
        "task": config["task"],
        "command": training_command(config, phases),
        "learning_rate_phases": [{"until_step": step, "rate": rate} for step, rate in phases],
        "data": f"train {config['train_set']}, validation {config['val_set']} "
                f"(center {config['val_crop']}px crops); patches {config['patch_size']}, "
                f"batch {config['batch_size']}, "
                f"levels {list(config['train_levels']) or list(task.train_levels)}",
        "train_steps": run_card["train_steps"],
        "wall_time_hours": round(max(hours.values(), default=0.0), 2),
        "machine": machine(),
        "training": config,
        "evaluation": {
            "set": results.get("set"), "images": results["images"],
            "command": results.get("command", ""),
            "psnr_ssim": {level: {rule: [round(v["psnr"], 2), round(v["ssim"], 4)]
                                  for rule, v in entry["rules"].items()}
                          for level, entry in results["levels"].items()}},
        "check": {"set": task.benchmark_set, "images": CHECK_IMAGES,
                  "levels": list(check_levels),
                  "oracle_psnr": {level: entry["rules"]["oracle"]["psnr"]
                                  for level, entry in check["levels"].items()}},
    }
    model.save_restorer(cell, prefix, card)
    return prefix


FLAGS = flags.FLAGS


def define_flags():
    """Declares the command-line flags (only when run as a program, so modules import cleanly)."""
    flags.DEFINE_string("run_dir", "runs/denoise_gray", "Finished run of train_restorer.")
    flags.DEFINE_string("results", "results/bsd68/results.json", "evaluate's JSON for the card.")
    flags.DEFINE_string("name", "denoise_gray", "File name of the shipped model.")
    flags.DEFINE_string("out_dir", None, "Where to write it (default: durr_tf/pretrained).")


def main(argv):
    del argv
    prefix = ship(FLAGS.run_dir, FLAGS.results, FLAGS.name, FLAGS.out_dir)
    print(f"shipped {prefix}.weights.h5 and {prefix}.json")


if __name__ == "__main__":
    define_flags()
    app.run(main)
