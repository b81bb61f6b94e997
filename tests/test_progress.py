from durr_tf.core import progress as progress_module
from durr_tf.core.progress import Progress


def _logged_lines(monkeypatch):
    """The lines Progress logs, read at the absl call (whatever the log's level and handlers)."""
    lines = []
    monkeypatch.setattr(progress_module.logging, "info", lambda text, *args: lines.append(
        text % args))
    return lines


def test_lines_show_rate_and_eta(monkeypatch):
    lines = _logged_lines(monkeypatch)
    progress = Progress(100, label="train")
    progress.began -= 10  # 10 items in 10 s
    progress.update(10, "loss 0.1")
    assert lines[-1].startswith("train 10/100 (10%) 1.00s/it") and "ETA 0:01:30" in lines[-1]
    assert lines[-1].endswith("loss 0.1")


def test_a_wall_time_budget_caps_the_eta(monkeypatch):
    lines = _logged_lines(monkeypatch)
    progress = Progress(100_000, max_seconds=60)
    progress.began -= 10
    progress.update(10)
    assert "ETA 0:00:49" in lines[-1] or "ETA 0:00:50" in lines[-1]
