"""Model cards: a finished training run as a shipped restorer (`python -m durr_tf.ship`), and
the command line of each phase of a run.

The card records the run's phases from its history.jsonl (steps, precision, machine, hours,
learning rates and the command of each, so a manual drop on resume is part of the recipe),
the data, which weights (as trained or their moving average), the evaluation table it was
measured with (on the task's benchmark set), and a small `check` (oracle PSNR of the set's
first images) that the test suite recomputes.
"""

import dataclasses
import json
import os


from data import sets
from durr_tf.training import history, trainer
from durr_tf.core import restorer_io, tasks
from durr_tf.evaluation import evaluator

CHECK_IMAGES = 2


# Flags that steer one phase of a run, rebuilt per phase rather than copied.
RUN_CONTROL = ("steps", "max_minutes", "set_learning_rate")


def _flag_text(value):
    """A setting as a command line writes it (JSON reads a tuple back as a list)."""
    return ",".join(f"{v:g}" for v in value) if isinstance(value, (list, tuple)) else value


def command_line(module, config, defaults, flagged, extra=()):
    """`python -m MODULE` with a flag for each setting of `config` that differs from
    `defaults`, then the `extra` arguments; settings outside `flagged` (made through the Python
    API) follow as a shell comment, so the line still runs and says what it cannot pass."""
    parts, unflagged = [f"python -m {module}"], []
    for key, value in config.items():
        value = _flag_text(value)
        if value == _flag_text(defaults.get(key)):
            continue
        if key not in flagged:
            unflagged.append(f"{key}={value}")
        elif isinstance(value, bool):
            parts.append(f"--{key}" if value else f"--no{key}")
        else:
            parts.append(f"--{key} {value}")
    parts.extend(extra)
    if unflagged:
        parts.append("# set through the Python API: " + ", ".join(unflagged))
    return " ".join(parts)


def training_command(config, until_step=None):
    """The train_restorer command line of one phase of a run, from the config it ran with.

    Flags that only steer a run (time budget, a manual rate) are rebuilt: the phase runs to
    `until_step`, and a rate set by hand on resume is passed again.
    """
    defaults = dataclasses.asdict(trainer.TrainConfig())
    settings = {key: value for key, value in trainer.current_keys(config).items()
                if key in defaults and key not in RUN_CONTROL}
    extra = [] if until_step is None else [f"--steps {until_step}"]
    if config.get("set_learning_rate", 0) > 0:
        extra.append(f"--set_learning_rate {config['set_learning_rate']:g}")
    return command_line("durr_tf.train_restorer", settings, defaults,
                        set(defaults) - set(trainer.NO_FLAG), extra)


def training_phases(rows):
    """One entry per phase of a run's history: the steps it trained, its precision, machine,
    training hours, learning rates and the command that ran it."""
    marks = [row for row in rows if row["kind"] == "phase"]
    last_step = max((row["step"] for row in rows), default=0)
    phases = []
    for i, mark in enumerate(marks):
        until = marks[i + 1]["step"] if i + 1 < len(marks) else last_step
        inside = [row for row in rows if mark["step"] < row["step"] <= until]
        seconds = [row["train_seconds"] for row in [mark] + inside if "train_seconds" in row]
        rates = [mark["learning_rate"]] + [row["learning_rate"] for row in inside
                                           if row["kind"] == "train"]
        phases.append({
            "from_step": mark["step"], "until_step": until, "precision": mark["precision"],
            "machine": mark["machine"],
            "hours": round((max(seconds) - min(seconds)) / 3600, 2) if len(seconds) > 1 else None,
            "learning_rates": sorted(set(rates), reverse=True),
            "command": mark.get("command") or training_command(mark["config"], until)})
    return phases


def machines(phases):
    """The machines a run trained on, in order, each with the steps it trained."""
    spans = []
    for phase in phases:
        if spans and spans[-1]["machine"] == phase["machine"]:
            spans[-1]["until"] = phase["until_step"]
        else:
            spans.append({"machine": phase["machine"], "from": phase["from_step"],
                          "until": phase["until_step"]})
    return "; ".join(f"steps {span['from']}-{span['until']}: {span['machine']}" for span in spans)


def ship(run_dir, results_path, name, out_dir=None, weights="restorer"):
    with open(os.path.join(run_dir, "config.json")) as handle:
        config = json.load(handle)
    run_card = restorer_io.read_card(os.path.join(run_dir, weights))
    with open(results_path) as handle:
        results = json.load(handle)
    rows = history.read(run_dir)
    phases = training_phases(rows)
    out_dir = out_dir or os.path.dirname(restorer_io.pretrained_prefix("denoise"))
    prefix = os.path.join(out_dir, name)
    cell, _ = restorer_io.load_restorer(os.path.join(run_dir, weights))
    task = tasks.get(config["task"])
    files = sets.resolve(task.benchmark_set)[:CHECK_IMAGES]
    check_levels = (task.train_levels[0], task.eval_levels[-1])  # one seen, one unseen level
    check = evaluator.evaluate(cell, task, files, check_levels, ["oracle"])
    card = {
        "task": config["task"],
        "command": " && ".join(phase["command"] for phase in phases),
        "phases": phases,
        "data": f"train {config['train_set']}, validation {config['val_set']} "
                f"(center {config['val_crop']}px crops); patches {config['patch_size']}, "
                f"batch {config['batch_size']}, "
                f"levels {list(config['train_levels']) or list(task.train_levels)}",
        "train_steps": run_card["train_steps"],
        "weights": run_card.get("weights", "trained weights"),
        "wall_time_hours": round(max((row.get("train_seconds", 0) for row in rows),
                                     default=0.0) / 3600, 2),
        "machine": machines(phases),
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
    restorer_io.save_restorer(cell, prefix, card)
    return prefix
