"""Killing a training run at any moment loses at most the steps since its last checkpoint."""

import os
import re
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, run_module


def _start_training(image_dir, run_dir, *extra):
    command = [sys.executable, "-u", "-m", "durr_tf.train_restorer", "--smoke", "--steps", 400,
               "--train_set", image_dir, "--val_set", image_dir, "--run_dir", run_dir, *extra]
    return subprocess.Popen([str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for_step(process, step, timeout=240):
    """Reads the progress lines until the run reports `step`; returns what it printed."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        match = re.match(r"train (\d+)/", line)
        if match and int(match.group(1)) >= step:
            return "".join(lines)
    raise AssertionError("training did not reach step %d:\n%s" % (step, "".join(lines)))


def test_sigkill_then_resume_from_the_last_checkpoint(image_dir, tmp_path):
    process = _start_training(image_dir, tmp_path)
    _wait_for_step(process, 7)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = sorted(int(n.split("-")[1].split(".")[0]) for n in
                         os.listdir(tmp_path / "ckpt") if n.endswith(".index"))
    assert checkpoints and checkpoints[-1] >= 6  # saved every 2 steps in the smoke setting
    resumed = run_module("durr_tf.train_restorer", "--smoke", "--steps", checkpoints[-1] + 2,
                         "--train_set", image_dir, "--val_set", image_dir, "--run_dir", tmp_path)
    assert f"at step {checkpoints[-1]}" in resumed.stdout
    assert f"stopped at step {checkpoints[-1] + 2}" in resumed.stdout


def test_sigterm_saves_a_checkpoint_first(image_dir, tmp_path):
    process = _start_training(image_dir, tmp_path, "--checkpoint_every", 1000)
    _wait_for_step(process, 3)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "saving a checkpoint and stopping" in output
    step = int(re.search(r"stopped at step (\d+)", output).group(1))
    assert os.path.exists(tmp_path / "ckpt" / f"ckpt-{step}.index")


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(image_dir, tmp_path):
    result = run_module("durr_tf.train_restorer", "--smoke", "--steps", 50, "--learning_rate",
                        1e30, "--train_set", image_dir, "--val_set", image_dir, "--run_dir",
                        tmp_path, check=False)
    assert result.returncode != 0
    assert "loss became" in result.stderr and "last good checkpoint" in result.stderr
    assert not os.path.exists(tmp_path / "restorer.weights.h5")
