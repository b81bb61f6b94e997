"""Shared fixtures: small synthetic images (no real photos needed), smoke-trained restorer and
DQN runs; a command's `main` run in the test's process, and SIGTERM sent to it mid-run."""

import contextlib
import fcntl
import importlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
from absl import flags
from absl import logging as absl_logging
from hypothesis import settings
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core: TensorFlow's thread pools of several workers would wait on each other.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF-Agents' Keras 2; durr_tf uses Keras 3
SIGTERM_RECORD = "sigterm_stop.json"  # in the dqn_run fixture's folder
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from durr_tf.core import progress  # noqa: E402  (imports TensorFlow: after the settings above)

# Fuzz tests (Hypothesis) try 40 inputs each in CI; HYPOTHESIS_PROFILE=long tries 1,000.
settings.register_profile("ci", max_examples=40, deadline=None)
settings.register_profile("long", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def synthetic_gray(height, width, seed=0):
    """A smooth image with edges, uint8, so denoising has structure to keep."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    image = 120 + 60 * np.sin(x / (4 + seed) + rng.uniform(0, 3)) + 40 * np.cos(y / 6.0)
    image[height // 3: 2 * height // 3, width // 4: width // 2] += 50
    return np.clip(image, 0, 255).astype(np.uint8)


def built_once(tmp_path_factory, name, build):
    """The folder `name` filled by `build(folder)` once per test session: under pytest-xdist
    (`make test`), in the base folder its workers share, by whichever worker comes first while
    the others wait for it. Returns the folder's path as a string."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return str(folder)
    folder = tmp_path_factory.getbasetemp().parent / name
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(f"{folder}.built"):
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            folder.mkdir()
            build(folder)
            open(f"{folder}.built", "w").close()
    return str(folder)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """Six gray PNGs of a few sizes."""
    def build(folder):
        for i, (h, w) in enumerate([(48, 56), (40, 40), (64, 48), (48, 48), (36, 52), (56, 40)]):
            Image.fromarray(synthetic_gray(h, w, i)).save(folder / f"img{i}.png")

    return built_once(tmp_path_factory, "images", build)


def run_in_process(module, *args, check=True):
    """Runs the command `python -m module args` from the repository root, but in this process (no
    TensorFlow import, no second interpreter); returns a CompletedProcess of the exit status, the
    printed text (stdout) and the printed errors and absl log at INFO and above (stderr).

    Commands share flag names, so the module's flags go into a FlagValues of their own, which
    stands in for the module's FLAGS while its `main` runs (with sys.argv the command line). A
    sys.exit gives its status as a process's would; any other exception, app.UsageError among
    them, reaches the test."""
    command = importlib.import_module(module)
    if hasattr(command, "__path__"):  # a package runs as its __main__ module
        command = importlib.import_module(f"{module}.__main__")
    flag_values = flags.FlagValues()
    command.define_flags(flag_values)
    argv = [module, *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with mock.patch.object(command, "FLAGS", flag_values), mock.patch.object(sys, "argv", argv), \
            contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            _absl_log_into(stderr):
        try:
            command.main(flag_values(argv))
            returncode = 0
        except SystemExit as exit:  # sys.exit(status or message), read as the interpreter does
            if isinstance(exit.code, str):
                print(exit.code, file=sys.stderr)
            returncode = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    result = subprocess.CompletedProcess([sys.executable, "-m", *argv], returncode,
                                         stdout.getvalue(), stderr.getvalue())
    if check and returncode != 0:
        raise AssertionError(f"{module} failed ({returncode}):\n{result.stdout}\n"
                             f"{result.stderr[-4000:]}")
    return result


@contextlib.contextmanager
def _absl_log_into(stream):
    """Writes absl's log at INFO and above into `stream` (as a command's log goes to its stderr),
    whatever level and handlers earlier code left the absl logger with."""
    logger = absl_logging.get_absl_logger()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.INFO)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def benchmark_sets_are_image_dir(monkeypatch, image_dir):
    """Every registered set resolves to the synthetic images, so that a card's check (the first
    images of the task's benchmark set) runs without the datasets and in a fraction of the
    time."""
    from data import sets

    monkeypatch.setattr(sets, "resolve", lambda name, data_dir=None: sets.image_files(image_dir))


@contextlib.contextmanager
def sigterm_when_progress_reaches(count):
    """Sends this process SIGTERM, as a cluster scheduler would, right after a run logs the
    progress of step `count`; yields the list that receives the step it was sent at."""
    update, sent_at = progress.Progress.update, []

    def update_then_signal(self, done, extra=""):
        update(self, done, extra)
        if done >= count and not sent_at:
            sent_at.append(done)
            os.kill(os.getpid(), signal.SIGTERM)

    with mock.patch.object(progress.Progress, "update", update_then_signal):
        yield sent_at


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, image_dir):
    """A run folder from the training command in its --smoke configuration."""
    def build(run_dir):
        run_in_process("durr_tf.train_restorer", "--smoke", "--train_set", image_dir,
                       "--val_set", image_dir, "--run_dir", run_dir)

    return built_once(tmp_path_factory, "smoke_run", build)


@pytest.fixture(scope="session")
def dqn_run(smoke_run, image_dir, tmp_path_factory):
    """A DQN run folder from the training command (its whole Q-network pretrained), stopped by
    SIGTERM at iteration 8 and resumed to 12 (without pretraining again). SIGTERM_RECORD in the
    folder keeps what the stopped run printed and the checkpoints it left."""
    restorer = os.path.join(smoke_run, "restorer")
    command = ["agents.train_dqn", "--smoke", "--restorer", restorer, "--train_set", image_dir,
               "--pretrain_iterations", 20, "--pretrain_network", "q_network"]

    def build(run_dir):
        with sigterm_when_progress_reaches(8):
            first = run_in_process(*command, "--run_dir", run_dir)
        assert "PSNR gap to oracle" in first.stderr
        assert "encoder pretrained on the remaining gain" in first.stderr
        assert "LSTM and head pretrained on the optimal Q-values" in first.stderr
        assert "evaluation at iteration 0" in first.stderr
        checkpoints = sorted(n for n in os.listdir(run_dir / "train") if n.endswith(".index"))
        with open(run_dir / SIGTERM_RECORD, "w") as handle:
            json.dump({"stdout": first.stdout, "stderr": first.stderr,
                       "checkpoints": checkpoints}, handle)
        resumed = run_in_process(*command, "--run_dir", run_dir)
        assert "resumed at iteration 8" in resumed.stderr
        assert "encoder pretrained" not in resumed.stderr
        assert "stopped at iteration 12" in resumed.stdout

    return built_once(tmp_path_factory, "dqn_run", build)
