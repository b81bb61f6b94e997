import io

from durr_tf.core.progress import Progress


def test_lines_show_rate_and_eta():
    stream = io.StringIO()
    progress = Progress(100, label="train", stream=stream)
    progress.began -= 10  # 10 items in 10 s
    progress.update(10, "loss 0.1")
    line = stream.getvalue()
    assert line.startswith("train 10/100 (10%) 1.00s/it") and "ETA 0:01:30" in line
    assert line.strip().endswith("loss 0.1")


def test_a_wall_time_budget_caps_the_eta():
    stream = io.StringIO()
    progress = Progress(100_000, stream=stream, max_seconds=60)
    progress.began -= 10
    progress.update(10)
    assert "ETA 0:00:49" in stream.getvalue() or "ETA 0:00:50" in stream.getvalue()
