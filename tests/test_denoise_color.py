"""The color denoiser (--task denoise_color): the 3-channel path of every command."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from durr_tf.core import tasks
from durr_tf.training import trainer
from tests.conftest import built_once, run_in_process, synthetic_gray

TASK = "denoise_color"


def synthetic_rgb(height, width, seed=0):
    """Three different smooth planes, so a color model has chroma to keep."""
    return np.stack([synthetic_gray(height, width, seed + k) for k in range(3)], axis=-1)


@pytest.fixture(scope="module")
def color_dir(tmp_path_factory):
    def build(folder):
        for i, (h, w) in enumerate([(48, 56), (40, 40), (64, 48), (48, 48)]):
            Image.fromarray(synthetic_rgb(h, w, i)).save(folder / f"img{i}.png")

    return built_once(tmp_path_factory, "color_images", build)


@pytest.fixture(scope="module")
def color_run(color_dir, tmp_path_factory):
    def build(run_dir):
        result = run_in_process("durr_tf.train_restorer", "--task", TASK, "--smoke",
                                "--train_set", color_dir, "--val_set", color_dir, "--run_dir",
                                run_dir)
        assert "σ25:" in result.stderr and "stopped at step 6" in result.stdout

    return built_once(tmp_path_factory, "color_run", build)


@pytest.fixture(scope="module")
def color_dqn(color_run, color_dir, tmp_path_factory):
    def build(run_dir):
        result = run_in_process("agents.train_dqn", "--task", TASK, "--smoke", "--restorer",
                                os.path.join(color_run, "restorer"), "--train_set", color_dir,
                                "--run_dir", run_dir)
        assert "stopped at iteration 12" in result.stdout

    return built_once(tmp_path_factory, "color_dqn", build)


def test_the_task_reads_every_layout_as_rgb_and_trains_on_cbsd432():
    task = tasks.get(TASK)
    gray = np.random.default_rng(0).uniform(0, 1, (5, 6, 1)).astype(np.float32)
    rgba = np.concatenate([gray, 1 - gray, gray / 2, np.ones_like(gray)], -1)
    np.testing.assert_array_equal(task.prepare_clean(gray), np.repeat(gray, 3, -1))
    np.testing.assert_array_equal(task.prepare_clean(rgba), rgba[..., :3])
    config = trainer.TrainConfig(task=TASK)
    assert (config.train_set, config.val_set) == ("CBSD432", "LIVE1")
    assert trainer.TrainConfig(task=TASK, train_set="mine").train_set == "mine"
    assert task.benchmark_set == "CBSD68" and task.benchmark_set != task.train_set


def test_noise_is_independent_per_channel():
    clean = np.full((64, 64, 3), 0.5, np.float32)
    noise = tasks.get(TASK).degrade(clean, 25.0, (0, 1)) - clean
    planes = noise.reshape(-1, 3).T
    assert np.allclose(planes.std(axis=1), 25 / 255, rtol=0.05)
    assert np.abs(np.corrcoef(planes)[np.triu_indices(3, 1)]).max() < 0.05


def test_color_restorer_card_and_evaluation(color_run, color_dir, tmp_path):
    card = json.load(open(os.path.join(color_run, "restorer.json")))
    assert card["channels"] == 3 and card["task"] == TASK
    out = tmp_path / "eval"
    result = run_in_process("durr_tf.evaluate", "--task", TASK, "--set", color_dir, "--sigmas",
                            "15,75", "--stop", "oracle,estimate,decorrelation,refined", "--limit",
                            2, "--max_steps", 6, "--restorer", os.path.join(color_run, "restorer"),
                            "--out", out)
    assert "| 75 | oracle |" in result.stdout
    levels = json.load(open(out / "results.json"))["levels"]
    assert levels["15"]["input_psnr"] > levels["75"]["input_psnr"]
    assert levels["15"]["rules"]["refined"]["step_mean"] == 2  # the gray map, extrapolated


def test_color_policy_is_a_three_channel_stop_rule(color_dqn, color_run):
    from durr_tf.core import restorer_io, stop_rules, unroll

    rule = stop_rules.parse_stop_rule(f"dqn:{color_dqn}/policy", TASK)
    cell, _ = restorer_io.load_restorer(os.path.join(color_run, "restorer"))
    out, steps, _ = unroll.restore(cell, tf.random.uniform([2, 17, 23, 3]), rule, 5)
    assert out.shape == (2, 17, 23, 3) and all(0 <= s <= 5 for s in steps.numpy())


def test_the_learned_color_stop_names_its_own_policy(monkeypatch, tmp_path):
    from durr_tf.core import stop_rules

    monkeypatch.setattr(stop_rules.restorer_io, "pretrained_policy",
                        lambda task: str(tmp_path / task))
    with pytest.raises(FileNotFoundError, match="no learned denoise_color policy"):
        stop_rules.parse_stop_rule("learned", TASK)


def test_export_serves_rgb_and_refuses_gray_tensors(color_run, color_dqn, tmp_path):
    run_in_process("durr_tf.export", "--task", TASK, "--restorer",
                   os.path.join(color_run, "restorer"), "--stop", f"dqn:{color_dqn}/policy",
                   "--max_steps", 5, "--out", tmp_path, "--version", 1)
    served = tf.saved_model.load(str(tmp_path / "1"))
    rgb = synthetic_rgb(19, 26).astype(np.float32)[None] / 255
    result = served.signatures["serving_default"](images=tf.constant(rgb))
    assert result["restored"].shape == (1, 19, 26, 3)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="3-channel"):
        served.signatures["serving_default"](images=tf.zeros([1, 8, 8, 1]))
    png = tf.io.encode_png(tf.constant(synthetic_gray(12, 15)[..., None])).numpy()
    decoded = served.signatures["restore_bytes"](image_bytes=tf.constant(png))
    restored = tf.io.decode_png(decoded["restored_png"]).numpy()
    assert restored.shape == (12, 15, 3)  # a gray photo comes back as RGB


def test_restore_command_with_the_color_model(color_run, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    rgb = synthetic_rgb(30, 41)
    Image.fromarray(rgb).save(inputs / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)]), "RGBA").save(
        inputs / "alpha.png")
    Image.fromarray(synthetic_gray(5, 7)).save(inputs / "tiny.png")
    run_in_process("durr_tf.restore", "--task", TASK, inputs, "--out", out, "--restorer",
                   os.path.join(color_run, "restorer"))
    assert Image.open(out / "rgb.png").mode == "RGB"
    alpha = np.asarray(Image.open(out / "alpha.png"))
    assert alpha.shape == (30, 41, 4) and (alpha[..., 3] == 77).all()
    assert Image.open(out / "tiny.png").size == (7, 5)
