"""A training run's scalars in a small JSON-lines file that is committed beside its checkpoint.

`runs/NAME/history.jsonl` holds one JSON object per line, each with a `kind`:
- `phase`: a stretch of training started by one command (step, precision, machine, learning
  rate, the command's flags);
- `train`: mean loss since the previous row, learning rate and the run's training seconds;
- `val`: validation PSNR per level (raw weights and their moving average) and loss.

A resumed run truncates the rows past the checkpoint it resumed from before it appends, so
steps that are trained again after a kill appear once, and the training seconds run on from the
checkpoint's. TensorBoard logs stay the detailed, uncommitted view of the same run.
"""

import json
import os
import platform

HISTORY_FILE = "history.jsonl"


def machine():
    """This machine in words: OS, CPU model and cores, GPUs."""
    cpu = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        cpu = f"{names[0] if names else 'CPU'} ({os.cpu_count()} cores available)"
    import tensorflow as tf  # imported here so that reading a history needs no TensorFlow
    gpus = tf.config.list_physical_devices("GPU")
    return f"{platform.system()} {platform.machine()}, {cpu}, " + (
        f"{len(gpus)} GPU(s)" if gpus else "no GPU")


def read(run_dir):
    """The rows of a run's history, in order (empty if it has none)."""
    path = os.path.join(run_dir, HISTORY_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


class History:
    """Appends rows to a run's history; `resume(step)` first drops what came after `step`."""

    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, HISTORY_FILE)
        self.train_seconds = 0.0

    def resume(self, step):
        """Keeps the rows up to `step` (the checkpoint resumed from) and their training time."""
        kept = [row for row in read(os.path.dirname(self.path)) if row["step"] <= step]
        self.train_seconds = max((row.get("train_seconds", 0.0) for row in kept), default=0.0)
        staging = self.path + ".tmp"
        with open(staging, "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in kept)
        os.replace(staging, self.path)

    def append(self, kind, step, **values):
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"kind": kind, "step": int(step), **values}) + "\n")
