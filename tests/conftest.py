"""Shared fixtures: small synthetic images (no real photos needed) and a smoke-trained restorer."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF-Agents' Keras 2; durr_tf uses Keras 3
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory):
    """Six gray PNGs of a few sizes."""
    folder = tmp_path_factory.mktemp("images")
    for i, (h, w) in enumerate([(48, 56), (40, 40), (64, 48), (48, 48), (36, 52), (56, 40)]):
        Image.fromarray(synthetic_gray(h, w, i)).save(folder / f"img{i}.png")
    return str(folder)


def run_module(module, *args, env=None, check=True, timeout=600):
    """Runs `python -m module args` from the repository root; returns the CompletedProcess."""
    environment = dict(os.environ, **(env or {}))
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                            env=environment, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, image_dir):
    """A run folder from the real training command in its --smoke configuration."""
    run_dir = tmp_path_factory.mktemp("smoke_run")
    run_module("durr_tf.train_restorer", "--smoke", "--train_set", image_dir,
               "--val_set", image_dir, "--run_dir", run_dir)
    return str(run_dir)


@pytest.fixture(scope="session")
def dqn_run(smoke_run, image_dir, tmp_path_factory):
    """A DQN run folder from the real command, interrupted after 8 iterations and resumed."""
    run_dir = tmp_path_factory.mktemp("dqn")
    restorer = os.path.join(smoke_run, "restorer")
    first = run_module("agents.train_dqn", "--smoke", "--iterations", 8, "--restorer", restorer,
                       "--train_set", image_dir, "--run_dir", run_dir)
    assert "stopped at iteration 8" in first.stdout and "PSNR gap to oracle" in first.stderr
    resumed = run_module("agents.train_dqn", "--smoke", "--restorer", restorer, "--train_set",
                         image_dir, "--run_dir", run_dir)
    assert "resumed at iteration 8" in resumed.stderr  # absl logging
    assert "stopped at iteration 12" in resumed.stdout
    return str(run_dir)
