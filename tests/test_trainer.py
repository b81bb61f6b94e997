import dataclasses
import json
import os

import numpy as np
import pytest

from durr_tf.training import history, trainer


def _config(image_dir, run_dir, **overrides):
    values = dict(trainer.SMOKE, train_set=image_dir, val_set=image_dir, run_dir=str(run_dir))
    values.update(overrides)
    return trainer.TrainConfig(**values)


def test_an_interrupted_run_resumes_to_the_same_weights(image_dir, tmp_path):
    straight = trainer.Trainer(_config(image_dir, tmp_path / "a", steps=4, val_every=100))
    straight.fit()
    first = trainer.Trainer(_config(image_dir, tmp_path / "b", steps=2, val_every=100))
    first.fit()
    resumed = trainer.Trainer(_config(image_dir, tmp_path / "b", steps=4, val_every=100))
    assert resumed.fit() == 4
    assert int(resumed.optimizer.iterations) == 4  # optimizer state came back too
    for a, b in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_run_folder_holds_config_checkpoints_and_weights(smoke_run):
    steps = trainer.SMOKE["steps"]
    with open(os.path.join(smoke_run, "config.json")) as handle:
        assert json.load(handle)["steps"] == steps
    with open(os.path.join(smoke_run, "restorer.json")) as handle:
        card = json.load(handle)
    assert card["parameters"] == 174_577 and card["train_steps"] == steps
    assert os.path.exists(os.path.join(smoke_run, "ckpt", f"ckpt-{steps}.index"))
    assert os.path.exists(os.path.join(smoke_run, "restorer.weights.h5"))
    assert any(name.startswith("events") for name in os.listdir(os.path.join(smoke_run, "train")))


def test_learning_rate_drops_tenfold_on_a_plateau(image_dir, tmp_path):
    run = trainer.Trainer(_config(image_dir, tmp_path / "p", plateau_patience=2))
    for loss in (1.0, 0.9, 0.95, 0.92):
        run._plateau(loss)
    assert float(run.learning_rate) == pytest.approx(1e-4)
    assert float(run.optimizer.learning_rate) == pytest.approx(1e-4)
    run._plateau(0.5)  # an improvement resets the count, rate stays
    assert float(run.learning_rate) == pytest.approx(1e-4)


def test_cosine_schedule_decays_from_its_start_step_to_the_floor(image_dir, tmp_path):
    """The rate holds before `decay_start`, follows the half cosine over `decay_steps`, stays at
    the floor after, and a plateau never touches it; the history records each step's rate and
    each phase's starting rate."""
    config = _config(image_dir, tmp_path / "c", steps=6, val_every=100, checkpoint_every=1,
                     lr_schedule="cosine", decay_start=1, decay_steps=4, plateau_patience=1)
    run = trainer.Trainer(config)
    run.fit()
    rates = [row["learning_rate"] for row in history.read(config.run_dir) if row["kind"] == "train"]
    floor, top = config.min_learning_rate, config.learning_rate
    middle = floor + (top - floor) / 2
    # Row k holds the rate batch k + 1 trained with, k steps into the run.
    assert len(rates) == 6
    assert rates[0] == pytest.approx(top) and rates[1] == pytest.approx(top)
    assert rates[3] == pytest.approx(middle, rel=1e-5)
    assert rates[5] == pytest.approx(floor, rel=1e-5) and rates[4] > rates[5]
    for loss in (1.0, 2.0, 3.0):
        run._plateau(loss)
    assert float(run.learning_rate) == pytest.approx(floor, rel=1e-5)
    # A second cycle from the floor: the resumed phase records the rate it restarts at.
    trainer.Trainer(dataclasses.replace(config, decay_start=6)).fit()  # no batch left to train
    phase = [row for row in history.read(config.run_dir) if row["kind"] == "phase"][-1]
    assert phase["step"] == 6 and phase["learning_rate"] == pytest.approx(top)
    with pytest.raises(ValueError, match="decay_steps"):
        _config(image_dir, tmp_path / "d", lr_schedule="cosine")


def test_a_resumed_run_takes_a_manually_set_learning_rate(image_dir, tmp_path):
    """The manual rate replaces the checkpoint's, and the plateau watch starts afresh from it."""
    first = trainer.Trainer(_config(image_dir, tmp_path / "m", steps=2, val_every=100))
    first.fit()
    first.best_val.assign(0.5)
    first.bad_vals.assign(3)  # one validation short of a drop under the default patience
    first.manager.save()
    kept = trainer.Trainer(_config(image_dir, tmp_path / "m", steps=2, val_every=100))
    kept.restore_or_initialize()
    assert int(kept.bad_vals) == 3 and float(kept.best_val) == 0.5
    resumed = trainer.Trainer(_config(image_dir, tmp_path / "m", steps=3, val_every=100,
                                      set_learning_rate=1e-4))
    resumed.fit()
    assert float(resumed.optimizer.learning_rate) == pytest.approx(1e-4)
    assert int(resumed.step) == 3 and int(resumed.bad_vals) == 0
    assert float(resumed.best_val) == np.inf


def test_naive_and_refined_unrollings_choose_steps(image_dir, tmp_path):
    import tensorflow as tf

    refined = _config(image_dir, tmp_path)
    naive = dataclasses.replace(refined, unrolling="naive", naive_steps=8)
    levels = tf.constant([45.0, 45.0])
    assert int(trainer.steps_for_levels(refined, levels)) == 9
    assert int(trainer.steps_for_levels(naive, levels)) == 8


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED_RUNS = sorted(name for name in os.listdir(os.path.join(REPO, "runs"))
                        if os.path.isdir(os.path.join(REPO, "runs", name, "ckpt")))


@pytest.mark.parametrize("name", COMMITTED_RUNS)
def test_a_committed_run_resumes_where_its_checkpoint_and_history_stopped(name, tmp_path):
    """Each run folder in the repo restores into today's trainer (weights, optimizer, moving
    average) at its checkpoint's step, and its history keeps every row up to that step."""
    import shutil

    from durr_tf.training import history

    source = os.path.join(REPO, "runs", name)
    shutil.copytree(source, tmp_path / name)
    with open(os.path.join(source, "config.json")) as handle:
        saved = json.load(handle)
    fields = {field.name for field in dataclasses.fields(trainer.TrainConfig)}
    config = trainer.TrainConfig(**dict(
        {key: tuple(value) if isinstance(value, list) else value
         for key, value in trainer.current_keys(saved).items() if key in fields},
        run_dir=str(tmp_path / name), set_learning_rate=0.0))
    run = trainer.Trainer(config)
    run.restore_or_initialize()
    with open(os.path.join(source, "ckpt", "checkpoint")) as handle:
        latest = handle.readline().split('"')[1]
    assert int(run.step) == int(latest.split("-")[1]) > 0
    assert int(run.optimizer.iterations) > 0
    rows = history.read(tmp_path / name)
    assert rows and max(row["step"] for row in rows) <= int(run.step)
    assert len(rows) == len([row for row in history.read(source) if row["step"] <= int(run.step)])
