"""Killing a training run (restorer or DQN policy) at any moment loses at most the steps since
its last checkpoint; SIGTERM saves one first; a diverging loss stops with the last good one.
The runs killed by SIGKILL are processes of their own; the others, SIGTERM's included, run in
the test's process."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SIGTERM_RECORD, run_in_process, sigterm_when_progress_reaches


def _start_training(image_dir, run_dir):
    """A run on two logical CPU devices: a process of its own, since the CPU is split into
    devices before TensorFlow starts."""
    command = [sys.executable, "-u", "-m", "durr_tf.train_restorer", "--smoke", "--steps", 400,
               "--devices", 2, "--train_set", image_dir, "--val_set", image_dir, "--run_dir",
               run_dir]
    return subprocess.Popen([str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for_step(process, step, timeout=240, label="train"):
    """Reads the progress lines until the run reports `step`; returns what it printed."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break  # the run ended (or never started) before that step
        lines.append(line)
        match = re.search(r"\b" + label + r" (\d+)/", line)  # after the log prefix
        if match and int(match.group(1)) >= step:
            return "".join(lines)
    raise AssertionError("training did not reach step %d:\n%s" % (step, "".join(lines)))


def test_sigkill_then_resume_from_the_last_checkpoint(image_dir, tmp_path):
    """Killed while it trains on two devices, the run resumes on one (as on a smaller
    machine)."""
    process = _start_training(image_dir, tmp_path)
    printed = _wait_for_step(process, 7)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = sorted(int(n.split("-")[1].split(".")[0]) for n in
                         os.listdir(tmp_path / "ckpt") if n.endswith(".index"))
    assert checkpoints and checkpoints[-1] >= 6  # saved every 2 steps in the smoke setting
    assert "training on 2 device(s)" in printed and "validation at step 6" in printed
    resumed = run_in_process("durr_tf.train_restorer", "--smoke", "--steps", checkpoints[-1] + 2,
                             "--train_set", image_dir, "--val_set", image_dir, "--run_dir",
                             tmp_path)
    assert f"at step {checkpoints[-1]}" in resumed.stderr
    assert f"stopped at step {checkpoints[-1] + 2}" in resumed.stdout


def test_sigterm_saves_a_checkpoint_first(image_dir, tmp_path):
    with sigterm_when_progress_reaches(3) as sent_at:
        result = run_in_process("durr_tf.train_restorer", "--smoke", "--steps", 400,
                                "--checkpoint_every", 1000, "--train_set", image_dir,
                                "--val_set", image_dir, "--run_dir", tmp_path)
    assert "saving a checkpoint and stopping" in result.stderr
    assert f"stopped at step {sent_at[0]}" in result.stdout
    assert os.path.exists(tmp_path / "ckpt" / f"ckpt-{sent_at[0]}.index")


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_good_checkpoint(image_dir, tmp_path):
    with pytest.raises(FloatingPointError, match="loss became .* last good checkpoint"):
        run_in_process("durr_tf.train_restorer", "--smoke", "--steps", 50, "--learning_rate",
                       1e30, "--train_set", image_dir, "--val_set", image_dir, "--run_dir",
                       tmp_path)
    assert not os.path.exists(tmp_path / "restorer.weights.h5")


def _dqn_args(smoke_run, image_dir, run_dir, *extra):
    return ["--smoke", "--restorer", os.path.join(smoke_run, "restorer"), "--train_set",
            image_dir, "--run_dir", run_dir, *extra]


def _start_dqn(smoke_run, image_dir, run_dir):
    command = [sys.executable, "-u", "-m", "agents.train_dqn",
               *_dqn_args(smoke_run, image_dir, run_dir, "--iterations", 400)]
    return subprocess.Popen([str(c) for c in command], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_dqn_sigkill_then_resume_from_the_last_checkpoint(smoke_run, image_dir, tmp_path):
    process = _start_dqn(smoke_run, image_dir, tmp_path)
    _wait_for_step(process, 6, label="dqn")
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = sorted(int(n.split("-")[1].split(".")[0]) for n in
                   os.listdir(tmp_path / "train") if n.startswith("ckpt-") and
                   n.endswith(".index"))
    assert saved and saved[-1] >= 4  # saved every 4 iterations, before iteration 6 is logged
    resumed = run_in_process("agents.train_dqn", *_dqn_args(smoke_run, image_dir, tmp_path,
                                                            "--iterations", saved[-1] + 2))
    assert f"resumed at iteration {saved[-1]}" in resumed.stderr
    assert f"stopped at iteration {saved[-1] + 2}" in resumed.stdout


def test_dqn_sigterm_saves_a_checkpoint_first(dqn_run):
    """The dqn_run fixture's first run got SIGTERM right after logging iteration 8."""
    with open(os.path.join(dqn_run, SIGTERM_RECORD)) as handle:
        stopped = json.load(handle)
    assert "saving a checkpoint and stopping" in stopped["stderr"]
    assert "stopped at iteration 8" in stopped["stdout"]
    assert "ckpt-8.index" in stopped["checkpoints"]


def test_a_diverging_q_loss_stops_the_dqn_run(smoke_run, image_dir, tmp_path):
    with pytest.raises(FloatingPointError, match="Q loss became .* last good checkpoint"):
        run_in_process("agents.train_dqn", *_dqn_args(smoke_run, image_dir, tmp_path,
                                                      "--learning_rate", 1e38))


def test_checkpoints_also_follow_the_wall_clock(image_dir, tmp_path):
    """However slow a step is, a checkpoint is at most --checkpoint_minutes old."""
    run_in_process("durr_tf.train_restorer", "--smoke", "--steps", 3, "--checkpoint_every",
                   1000, "--checkpoint_minutes", 1e-6, "--train_set", image_dir, "--val_set",
                   image_dir, "--run_dir", tmp_path)
    saved = {n for n in os.listdir(tmp_path / "ckpt") if n.endswith(".index")}
    assert {"ckpt-1.index", "ckpt-2.index"} <= saved
