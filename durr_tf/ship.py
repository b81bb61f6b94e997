"""Turns a finished training run into a shipped model: weights + JSON card in durr_tf/pretrained.

    python -m durr_tf.ship --run_dir runs/denoise_gray --results results/bsd68/results.json

The card records the training command (rebuilt from the run's config.json), the data, the
steps and training time, the machine, the evaluation table it was measured with (on the task's
benchmark set), and a small `check` (oracle PSNR of the set's first images) that the test
suite recomputes.
"""

import dataclasses
import json
import os
import platform

from absl import app, flags

from data import sets
from durr_tf import evaluate, model, tasks, trainer, training_curve

CHECK_IMAGES = 2


def training_command(config):
    """The train_restorer command line that reproduces a config (non-default flags only)."""
    defaults = dataclasses.asdict(trainer.TrainConfig())
    parts = ["python -m durr_tf.train_restorer"]
    for key, value in config.items():
        if key in defaults and value != defaults[key] and key not in ("widths", "train_levels"):
            parts.append(f"--{key} {value}")
    return " ".join(parts)


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
    losses = training_curve.read_scalars(os.path.join(run_dir, "train")).get("loss", [])
    hours = training_curve.active_hours(losses)
    out_dir = out_dir or os.path.dirname(model.pretrained_prefix("denoise"))
    prefix = os.path.join(out_dir, name)
    cell, _ = model.load_restorer(os.path.join(run_dir, "restorer"))
    task = tasks.get(config["task"])
    files = sets.resolve(task.benchmark_set)[:CHECK_IMAGES]
    check_levels = (task.train_levels[0], task.eval_levels[-1])  # one seen, one unseen level
    check = evaluate.evaluate(cell, task, files, check_levels, ["oracle"])
    card = {
        "task": config["task"],
        "command": training_command(config),
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
