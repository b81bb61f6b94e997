"""Validation PSNR against training time from a run's history.jsonl, as a figure and JSON.

Training time is the run's own clock (`train_seconds`), which stops while a run is stopped
and counts steps trained again after a kill once. `read_scalars` and `active_hours` read the
same from TensorBoard logs, for runs that keep no history (the DQN policy's).
"""

import glob
import json
import math
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402

from durr_tf.core import tasks  # noqa: E402
from durr_tf.training import history  # noqa: E402

MAX_GAP_S = 300.0


def read_scalars(log_dir):
    """{tag: [(step, wall_time, value)]} from every event file of a TensorBoard folder, by step.

    A resumed run redoes the steps since its last checkpoint and logs them again; the later
    point of a step replaces the earlier, so steps and wall times both run forward.
    """
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    continue
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                    else value.simple_value
                latest = scalars.setdefault(value.tag, {})
                if event.step not in latest or latest[event.step][1] < event.wall_time:
                    latest[event.step] = (event.step, event.wall_time, number)
    return {tag: sorted(points.values()) for tag, points in scalars.items()}


def active_hours(loss_points):
    """{step: hours of training up to that step}, skipping stop/resume gaps."""
    hours, total, previous = {}, 0.0, None
    for step, wall, _ in loss_points:
        if previous is not None and wall - previous < MAX_GAP_S:
            total += wall - previous
        previous = wall
        hours[step] = total / 3600.0
    return hours


def curve(run_dir):
    """{label: [(step, training hours, validation PSNR)]} from the run's history.jsonl: one
    curve per level for the trained weights and, where the run kept one, one ("25 EMA") for
    their moving average."""
    curves, seconds = {}, 0.0
    rows = history.read(run_dir)
    clock = {row["step"]: row["train_seconds"] for row in rows if "train_seconds" in row}
    for row in rows:
        # A validation is timed by the run's clock at its step (the checkpoint row written
        # with it), else by the latest clock before it.
        seconds = clock.get(row["step"], seconds)
        if row["kind"] != "val":
            continue
        hours = seconds / 3600
        for key, suffix in (("psnr", ""), ("psnr_ema", " EMA")):
            for level, psnr in row.get(key, {}).items():
                curves.setdefault(level + suffix, []).append((row["step"], hours, psnr))
    return curves


def compare(run_dirs, from_step, hours, last=3):
    """An A/B at equal wall-clock time of runs that resumed from one checkpoint at `from_step`:
    per run, the steps it trained in its first `hours` of training since then and the
    validation PSNR per level (mean of its `last` validations in that time, which evens out the
    noise of a small validation set), as trained and as moving average."""
    rows = []
    for run_dir in run_dirs:
        rows_after = [row for row in history.read(run_dir) if row["step"] >= from_step]
        start = min(row["train_seconds"] for row in rows_after if "train_seconds" in row)
        within = [row["step"] for row in rows_after
                  if row.get("train_seconds", math.inf) - start <= 3600 * hours]
        vals = [row for row in rows_after
                if row["kind"] == "val" and row["step"] <= max(within)][-last:]
        if not vals:
            raise ValueError(f"{run_dir} has no validation in {hours} h after step {from_step}")
        row = {"run": run_dir, "steps": max(within) - from_step, "hours": hours}
        for key in ("psnr", "psnr_ema"):
            if all(key in v for v in vals):
                row[key] = {level: round(float(np.mean([v[key][level] for v in vals])), 3)
                            for level in vals[-1][key]}
        rows.append(row)
    return rows


def compare_table(rows, symbol="σ"):
    """The A/B rows as a Markdown table."""
    levels = list(rows[0]["psnr"])
    lines = ["| run | steps | hours | weights | " + " | ".join(f"{symbol} {l}" for l in levels)
             + " | mean |", "|---|---|---|---|" + "---|" * (len(levels) + 1)]
    for row in rows:
        for key, name in (("psnr", "trained"), ("psnr_ema", "EMA")):
            if key in row:
                values = [row[key][level] for level in levels]
                lines.append(f"| {row['run']} | {row['steps']} | {row['hours']} | {name} | "
                             + " | ".join(f"{v:.2f}" for v in values)
                             + f" | {np.mean(values):.3f} |")
    return "\n".join(lines)


def level_symbol(run_dir):
    """"σ" or "QF", from the task in the run's config.json (σ if there is none)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return tasks.get("denoise").level_symbol
    with open(path) as handle:
        task = json.load(handle).get("task", "denoise")
    return tasks.get(task).level_symbol


def plot(curves, path, title, symbol="σ"):
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {}
    for label, points in curves.items():
        level = label.split()[0]
        color = colors.setdefault(level, f"C{len(colors)}")
        ax.plot([p[1] for p in points], [p[2] for p in points], color=color,
                linestyle="--" if label.endswith("EMA") else "-",
                marker="" if label.endswith("EMA") else ".", label=f"{symbol}={label}")
    ax.set(xlabel="training time on this machine (hours)", ylabel="validation PSNR (dB)",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
