import logging

from durr_tf.core.progress import Progress


def test_lines_show_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="absl")  # whatever level an earlier test left it at
    progress = Progress(100, label="train")
    progress.began -= 10  # 10 items in 10 s
    progress.update(10, "loss 0.1")
    line = caplog.messages[-1]
    assert line.startswith("train 10/100 (10%) 1.00s/it") and "ETA 0:01:30" in line
    assert line.endswith("loss 0.1")


def test_a_wall_time_budget_caps_the_eta(caplog):
    caplog.set_level(logging.INFO, logger="absl")  # whatever level an earlier test left it at
    progress = Progress(100_000, max_seconds=60)
    progress.began -= 10
    progress.update(10)
    assert "ETA 0:00:49" in caplog.messages[-1] or "ETA 0:00:50" in caplog.messages[-1]
