"""The training-curve plot and the speed benchmark (behaviour only; no timing is asserted)."""

import os

from durr_tf import speed, training_curve


def test_active_hours_skip_stop_and_resume_gaps():
    points = [(1, 0.0, 0), (2, 60.0, 0), (3, 10_000.0, 0), (4, 10_120.0, 0)]
    hours = training_curve.active_hours(points)
    assert hours[2] * 3600 == 60 and hours[4] * 3600 == 180


def test_curve_of_a_smoke_run(smoke_run, tmp_path):
    curves = training_curve.curve(smoke_run)
    assert set(curves) == {"25", "35", "45", "55"}
    assert all(len(points) >= 1 and 0 < points[-1][2] < 60 for points in curves.values())
    training_curve.plot(curves, str(tmp_path / "curve.png"), "smoke")
    assert os.path.getsize(tmp_path / "curve.png") > 5_000


def test_speed_measurements_run():
    assert speed.train_step_seconds("float32", steps=1, repeats=1) > 0
    assert speed.loop_milliseconds("float32", 17, 23, repeats=1) > 0


def test_ship_rebuilds_the_training_command_from_a_config():
    import dataclasses

    from durr_tf import ship, trainer

    config = dataclasses.asdict(trainer.TrainConfig(run_dir="runs/x", max_minutes=120.0))
    assert ship.training_command(config) == (
        "python -m durr_tf.train_restorer --run_dir runs/x --max_minutes 120.0")
