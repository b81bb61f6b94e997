"""Validation PSNR against training time from a run's TensorBoard logs, as a figure and JSON.

    python -m durr_tf.training_curve --run_dir runs/denoise_gray --out docs/figures/curve.png

Training time counts only while the run was going: gaps of over 5 minutes between logged
steps (the run was stopped and later resumed) are left out.
"""

import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.util import event_pb2  # noqa: E402
from absl import app, flags  # noqa: E402

from durr_tf import tasks  # noqa: E402

MAX_GAP_S = 300.0


def read_scalars(log_dir):
    """{tag: [(step, wall_time, value)]} from every event file of a TensorBoard folder, by step.

    A resumed run redoes the steps since its last checkpoint and logs them again; the later
    point of a step replaces the earlier, so steps and wall times both run forward.
    """
    scalars = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
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
    scalars = read_scalars(os.path.join(run_dir, "train"))
    hours = active_hours(scalars.get("loss", []))
    return {tag.split("_", 1)[1]: [(step, hours.get(step, 0.0), value)
                                   for step, _, value in points]
            for tag, points in scalars.items() if tag.startswith("val/psnr_")}


def level_symbol(run_dir):
    """"σ" or "QF", from the task in the run's config.json (σ if there is none)."""
    path = os.path.join(run_dir, "config.json")
    task = json.load(open(path)).get("task", "denoise") if os.path.exists(path) else "denoise"
    return tasks.get(task).level_symbol


def plot(curves, path, title, symbol="σ"):
    fig, ax = plt.subplots(figsize=(6, 4))
    for level, points in curves.items():
        ax.plot([p[1] for p in points], [p[2] for p in points], marker=".",
                label=f"{symbol}={level}")
    ax.set(xlabel="training time on this machine (hours)", ylabel="validation PSNR (dB)",
           title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


FLAGS = flags.FLAGS


def define_flags():
    """Declares the command-line flags (only when run as a program, so modules import cleanly)."""
    flags.DEFINE_string("run_dir", "runs/denoise_gray", "Run folder of train_restorer.")
    flags.DEFINE_string("out", "training_curve.png", "Figure path; JSON is written beside it.")


def main(argv):
    del argv
    curves = curve(FLAGS.run_dir)
    if not curves:
        raise app.UsageError(f"no validation scalars under {FLAGS.run_dir}/train")
    symbol = level_symbol(FLAGS.run_dir)
    plot(curves, FLAGS.out, f"validation PSNR during training ({os.path.basename(FLAGS.run_dir)})",
         symbol)
    with open(os.path.splitext(FLAGS.out)[0] + ".json", "w") as handle:
        json.dump({"run_dir": FLAGS.run_dir, "curves": curves}, handle, indent=1)
    for level, points in curves.items():
        step, hours, value = points[-1]
        print(f"{symbol}={level}: {value:.2f} dB at step {step} ({hours:.2f} h)")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
