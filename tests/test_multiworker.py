"""Two workers on 127.0.0.1 under MultiWorkerMirroredStrategy (TF_CONFIG) train as one worker
does on the same global batches, resume together after one dies, and only the chief writes the
run folder."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from durr_tf.training import history, trainer
from tests.conftest import REPO

STEPS = 6
# float32 compute: two workers sum the same per-image losses and gradients in another order,
# so the losses agree to rounding (about 1e-7 relative here), far inside this tolerance.
RTOL = 1e-4
SMOKE_FLAGS = dict(checkpoint_every=1, val_every=100, precision="float32")
TIMEOUT = 600  # seconds for one launch of the pair, on a loaded 2-core machine


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(image_dir, run_dir, folder):
    """Starts worker 0 (the chief) and worker 1 of a fresh cluster; each logs to a file in
    `folder` and has its own temporary folder there."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    flags = [f"--{name}={value}" for name, value in SMOKE_FLAGS.items()]
    workers = []
    for index in range(2):
        scratch = folder / f"tmp{index}"
        scratch.mkdir(parents=True)
        env = dict(os.environ, TMPDIR=str(scratch), TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        command = [sys.executable, "-u", "-m", "durr_tf.train_restorer", "--smoke", *flags,
                   f"--steps={STEPS}", f"--train_set={image_dir}", f"--val_set={image_dir}",
                   f"--run_dir={run_dir}"]
        with open(folder / f"worker{index}.log", "w") as log:
            workers.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                                            stderr=subprocess.STDOUT))
    return workers


def _log(folder, index):
    with open(folder / f"worker{index}.log") as handle:
        return handle.read()


def _wait_for_history_step(run_dir, step, workers, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(row["kind"] == "train" and row["step"] >= step for row in history.read(run_dir)):
            return
        if any(worker.poll() is not None for worker in workers):
            raise AssertionError("a worker stopped before step %d" % step)
        time.sleep(0.2)
    raise AssertionError("the chief did not record step %d in %d s" % (step, timeout))


def test_two_workers_train_as_one_and_resume_after_a_worker_dies(image_dir, tmp_path):
    run_dir = tmp_path / "run"
    workers = _start_workers(image_dir, run_dir, tmp_path / "first")
    try:
        _wait_for_history_step(run_dir, 2, workers, TIMEOUT)
        workers[1].send_signal(signal.SIGKILL)
        # One worker on the same global batches, while the chief notices that worker 1 died.
        reference = tmp_path / "one_worker"
        trainer.Trainer(trainer.TrainConfig(**dict(
            trainer.SMOKE, **SMOKE_FLAGS, steps=STEPS, train_set=image_dir, val_set=image_dir,
            run_dir=str(reference)))).fit()
        assert workers[0].wait(timeout=TIMEOUT) != 0  # the chief fails on its next collective
        workers = _start_workers(image_dir, run_dir, tmp_path / "again")
        for worker in workers:
            worker.wait(timeout=TIMEOUT)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    again = tmp_path / "again"
    for index in range(2):
        assert workers[index].returncode == 0, _log(again, index)
    resumed = [int(re.search(r"resumed from \S+ at step (\d+)", _log(again, index)).group(1))
               for index in range(2)]
    assert resumed[0] == resumed[1] >= 2  # both workers resumed from the chief's checkpoint
    assert f"stopped at step {STEPS}" in _log(again, 0)

    rows = history.read(run_dir)
    assert [row["step"] for row in rows if row["kind"] == "phase"] == [0, resumed[0]]
    trained = [row for row in rows if row["kind"] == "train"]
    assert [row["step"] for row in trained] == list(range(1, STEPS + 1))  # each step once
    single = [row["loss"] for row in history.read(reference) if row["kind"] == "train"]
    np.testing.assert_allclose([row["loss"] for row in trained], single, rtol=RTOL)

    # Checkpoints and summaries are the chief's alone (one event file per launch), and the
    # other worker's scratch folder is gone.
    kept = [f"ckpt-{s}.{suffix}" for s in range(STEPS - 2, STEPS + 1)
            for suffix in ("data-00000-of-00001", "index")]
    assert sorted(os.listdir(run_dir / "ckpt")) == sorted(["checkpoint", *kept])
    assert len(os.listdir(run_dir / "train")) == 2
    assert os.listdir(again / "tmp0") == [] and os.listdir(again / "tmp1") == []
