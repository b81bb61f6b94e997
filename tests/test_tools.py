"""The training-curve plot, the ship command and the speed benchmarks (behaviour only; no timing
is asserted)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from durr_tf.tools import timing
from durr_tf.training import cards, curves
from tests.conftest import run_in_process


def test_active_hours_skip_stop_and_resume_gaps():
    points = [(1, 0.0, 0), (2, 60.0, 0), (3, 10_000.0, 0), (4, 10_120.0, 0)]
    hours = curves.active_hours(points)
    assert hours[2] * 3600 == 60 and hours[4] * 3600 == 180


def test_a_resumed_run_counts_its_redone_steps_once(tmp_path):
    """Steps 3-5 are logged by a run killed after its checkpoint at 2 and again by the resume."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2
    from tensorflow.core.util import event_pb2

    def write(name, points):
        with tf.io.TFRecordWriter(str(tmp_path / f"events.out.tfevents.{name}")) as writer:
            for step, wall, loss in points:
                value = summary_pb2.Summary.Value(tag="loss", simple_value=loss)
                event = event_pb2.Event(step=step, wall_time=wall,
                                        summary=summary_pb2.Summary(value=[value]))
                writer.write(event.SerializeToString())

    write("1", [(step, 10.0 * step, 1.0) for step in range(1, 6)])
    write("2", [(step, 100.0 + 10.0 * step, 2.0) for step in range(3, 8)])
    points = curves.read_scalars(str(tmp_path))["loss"]
    assert [p[0] for p in points] == [1, 2, 3, 4, 5, 6, 7]
    assert [p[2] for p in points] == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    hours = curves.active_hours(points)
    seconds = [round(hours[step] * 3600) for step in range(1, 8)]
    assert seconds == [0, 10, 120, 130, 140, 150, 160]  # the 100 s of lost work counted once


def test_curve_of_a_smoke_run(smoke_run, tmp_path):
    lines = curves.curve(smoke_run)
    assert set(lines) == {"25", "35", "45", "55", "25 EMA", "35 EMA", "45 EMA", "55 EMA"}
    assert all(len(points) >= 1 and 0 < points[-1][2] < 60 for points in lines.values())
    curves.plot(lines, str(tmp_path / "curve.png"), "smoke")
    assert os.path.getsize(tmp_path / "curve.png") > 5_000


def test_curve_labels_follow_the_task_of_the_run(smoke_run, tmp_path):
    assert curves.level_symbol(smoke_run) == "σ"
    (tmp_path / "config.json").write_text(json.dumps({"task": "deblock"}))
    assert curves.level_symbol(str(tmp_path)) == "QF"


def test_timed_calls_train_the_unit_and_step_the_image(monkeypatch):
    """What is timed: a training step that updates the weights (the loss falls from call to
    call on the fixed batch), and one Euler step on an image of the given height and width."""
    results = []

    def keep_results(function, repeats):
        results.extend(function() for _ in range(1 + repeats))  # the warm-up and the timed calls
        return 1.0

    monkeypatch.setattr(timing, "median_seconds", keep_results)
    assert timing.train_step_seconds("float32", steps=1, repeats=1) == 1.0
    assert len(results) == 2 and results[0] > results[1] > 0
    results.clear()
    assert timing.loop_milliseconds("float32", 17, 23, repeats=1) == 1000.0
    assert [r.shape for r in results] == [(1, 17, 23, 1)] * 2


def test_median_seconds_is_the_median_lap_after_a_warm_up(monkeypatch):
    """One untimed call, then `repeats` laps of one call each, of which the median is kept."""
    calls = []

    def laps(function, number, repeat):
        assert number == 1
        return [function() or lap for lap in (3.0, 1.0, 2.0)[:repeat]]

    monkeypatch.setattr(timing.timeit, "repeat", laps)
    assert timing.median_seconds(lambda: calls.append(1), repeats=3) == 2.0
    assert len(calls) == 4


def test_ship_rebuilds_each_phase_of_a_history():
    from durr_tf.training import trainer

    config = dataclasses.asdict(trainer.TrainConfig(run_dir="runs/x", max_minutes=120.0,
                                                    val_every=100))
    assert cards.training_command(config) == (
        "python -m durr_tf.train_restorer --run_dir runs/x --val_every 100")
    assert cards.training_command(dict(config, train_levels=[25.0, 35.0])) == (
        "python -m durr_tf.train_restorer --train_levels 25,35 --run_dir runs/x "
        "--val_every 100")
    older = dict(config, policy="naive", widths=[8, 16, 32])  # a config saved before a rename
    del older["unrolling"]
    assert cards.training_command(older, until_step=50) == (
        "python -m durr_tf.train_restorer --run_dir runs/x --val_every 100 --unrolling naive "
        "--steps 50 # set through the Python API: widths=8,16,32")
    resumed = dict(config, set_learning_rate=1e-4, train_set="Train400,CBSD432")
    rows = [
        {"kind": "phase", "step": 0, "precision": "float32", "machine": "A",
         "learning_rate": 1e-3, "command": "python -m durr_tf.train_restorer --steps 40"},
        {"kind": "val", "step": 20, "psnr": {"25": 20.0}, "train_seconds": 360.0},
        {"kind": "phase", "step": 40, "precision": "mixed_bfloat16", "machine": "B",
         "learning_rate": 1e-4, "train_seconds": 720.0, "config": resumed},
        {"kind": "train", "step": 50, "loss": 0.1, "learning_rate": 1e-4, "train_seconds": 900.0},
        {"kind": "train", "step": 60, "loss": 0.1, "learning_rate": 1e-5, "train_seconds": 1080.0},
    ]
    first, second = cards.training_phases(rows)
    assert (first["from_step"], first["until_step"], first["machine"]) == (0, 40, "A")
    assert first["command"] == "python -m durr_tf.train_restorer --steps 40"
    assert (second["from_step"], second["until_step"], second["precision"]) == (
        40, 60, "mixed_bfloat16")
    assert second["hours"] == 0.1 and second["learning_rates"] == [1e-4, 1e-5]
    assert second["command"] == (
        "python -m durr_tf.train_restorer --train_set Train400,CBSD432 --run_dir runs/x "
        "--val_every 100 --steps 60 --set_learning_rate 0.0001")
    again_a = dict(rows[0], step=60)  # back on machine A: three spans, consecutive ones merged
    assert cards.machines(cards.training_phases(rows + [again_a, dict(again_a, step=70)])) == (
        "steps 0-40: A; steps 40-60: B; steps 60-70: A")


def test_training_curve_command(smoke_run, tmp_path):
    result = run_in_process("durr_tf.tools.training_curve", "--run_dir", smoke_run,
                            "--out", tmp_path / "curve.png")
    curves_written = json.load(open(tmp_path / "curve.json"))["curves"]
    assert set(curves_written) == set(curves.curve(smoke_run))
    step, _, psnr = curves_written["25"][-1]
    assert f"σ=25: {psnr:.2f} dB at step {step}" in result.stdout
    assert os.path.getsize(tmp_path / "curve.png") > 5_000


def test_speed_command_times_each_measurement_of_each_precision(monkeypatch, tmp_path):
    """The table and JSON hold one row per measurement: training at N = 4, 8, 12 and the
    inference loop in float32 with --repeats, bfloat16 once at N = 4 (the timing functions are
    tested above; here they return fixed times)."""
    from durr_tf import speed

    calls = []
    monkeypatch.setattr(speed, "train_step_seconds",
                        lambda *args: calls.append(("train", *args)) or 0.25)
    monkeypatch.setattr(speed, "loop_milliseconds",
                        lambda *args: calls.append(("loop", *args)) or 40.0)
    result = run_in_process("durr_tf.speed", "--repeats", 3, "--out", tmp_path / "speed.json")
    assert calls == [("train", "float32", 4, 3), ("train", "float32", 8, 3),
                     ("train", "float32", 12, 3), ("loop", "float32", 321, 481, 3),
                     ("train", "mixed_bfloat16", 4, 1), ("loop", "mixed_bfloat16", 321, 481, 1)]
    written = json.load(open(tmp_path / "speed.json"))
    assert [row["ms"] for row in written["rows"]] == [250.0, 250.0, 250.0, 40.0, 250.0, 40.0]
    assert written["info"]["parameters"] == 174_577
    assert "| train step, batch 24×64×64, N=12 | float32 | 250 |" in result.stdout
    assert "| inference, one loop on 481×321 | mixed_bfloat16 | 40 |" in result.stdout


def test_ship_command_writes_weights_and_card(smoke_run, image_dir, tmp_path,
                                             benchmark_sets_are_image_dir):
    run_in_process("durr_tf.evaluate", "--set", image_dir, "--sigmas", "25", "--limit", 1,
                   "--max_steps", 3, "--restorer", os.path.join(smoke_run, "restorer"),
                   "--out", tmp_path / "eval")
    run_in_process("durr_tf.ship", "--run_dir", smoke_run, "--results",
                   tmp_path / "eval" / "results.json", "--name", "m", "--out_dir", tmp_path)
    card = json.load(open(tmp_path / "m.json"))
    assert card["command"].startswith("python -m durr_tf.train_restorer")
    assert set(card["check"]["oracle_psnr"]) == {"25", "75"}
    assert os.path.exists(tmp_path / "m.weights.h5")


def test_jpeg_encoder_comparison_on_synthetic_images(image_dir):
    from data import sets
    from durr_tf.tools import jpeg_encoders

    rows = jpeg_encoders.compare(sets.image_files(image_dir)[:2], [10, 40])
    assert [r["qf"] for r in rows] == [10, 40]
    assert all(0 <= r["pixels_differing"] <= 1 and r["max_gray_levels"] <= 3 for r in rows)
    assert rows[0]["psnr_pil"] < rows[1]["psnr_pil"]


def test_inference_benchmark_times_every_runner():
    from durr_tf.tools import inference_benchmark
    from durr_tf.core import tasks

    rows = inference_benchmark.measure(tasks.get("denoise"), "denoise", [(24, 36)], ["fixed:2"],
                                       repeats=1)
    assert [r["runner"] for r in rows] == ["restorer", "restorer bfloat16", "SavedModel"]
    assert all(r["steps"] == 2 and r["seconds"] > 0 and r["size"] == "36×24" for r in rows)


def test_inference_benchmark_times_each_tasks_default_stop_unless_told():
    from durr_tf.tools import inference_benchmark
    from durr_tf.core import tasks

    for task in ("denoise", "deblock", "denoise_color"):
        assert inference_benchmark.stops_to_time(tasks.get(task), []) == [
            "fixed:10", "estimate", "learned"]
    assert inference_benchmark.stops_to_time(tasks.get("deblock"), ["fixed:3"]) == ["fixed:3"]


@pytest.mark.skipif(not os.path.exists(os.path.join(os.environ.get("DURR_PEERS_DIR", ""),
                                                    "dncnn_b", "GD_Gray_Blind.mat")),
                    reason="needs DURR_PEERS_DIR with DnCNN-B")
def test_saved_models_and_dncnn_b_restore_the_same_images(image_dir):
    from data import sets
    from durr_tf.tools import inference_benchmark
    from durr_tf.core import tasks

    rows = inference_benchmark.versus_dncnn(
        tasks.get("denoise"), "denoise", sets.image_files(image_dir)[:2], [25.0, 50.0],
        ["fixed:2", "estimate"], ["float32"], 1, os.environ["DURR_PEERS_DIR"])
    assert [(r["sigma"], r["stop"], r["precision"]) for r in rows] == [
        (sigma, stop, "float32") for sigma in (25.0, 50.0) for stop in ("fixed:2", "estimate")]
    for row in rows:
        assert row["ratio"] == pytest.approx(row["seconds"] / row["dncnn_seconds"])
        assert row["psnr"] > {25.0: 21.0, 50.0: 15.0}[row["sigma"]]  # above the noisy input
    fixed = [r for r in rows if r["stop"] == "fixed:2"]
    assert all(r["steps"] == 2 for r in fixed)
    # one DnCNN-B run per σ, beside every SavedModel
    assert len({(r["sigma"], r["dncnn_psnr"], r["dncnn_seconds"]) for r in rows}) == 2
    # the blind stop takes more steps at the higher σ
    estimate = {r["sigma"]: r["steps"] for r in rows if r["stop"] == "estimate"}
    assert estimate[50.0] > estimate[25.0]
    means = inference_benchmark.mean_ratios(rows)
    assert [(m["stop"], m["precision"]) for m in means] == [("fixed:2", "float32"),
                                                            ("estimate", "float32")]
    assert means[0]["mean_ratio"] == pytest.approx(np.mean([r["ratio"] for r in fixed]))


@pytest.mark.parametrize("task", ["denoise", "denoise_color"])
def test_rule_cost_times_a_step_and_a_rule_call_on_the_same_image(task):
    from durr_tf.tools import inference_benchmark
    from durr_tf.core import tasks

    rows = inference_benchmark.rule_cost(tasks.get(task), task, [(24, 36)],
                                         ["fixed:2", "estimate", "learned"], repeats=2)
    assert [r["stop"] for r in rows] == ["fixed:2", "estimate", "learned"]
    for row in rows:
        assert row["size"] == "36×24" and row["restorer_step_ms"] > 0 and row["rule_ms"] > 0
        assert row["rule_share"] == pytest.approx(row["rule_ms"] / row["restorer_step_ms"])


def test_the_benchmark_image_has_the_task_channels_with_noise_drawn_per_channel():
    from durr_tf.tools import inference_benchmark

    gray, color = (inference_benchmark.test_image(20, 30, channels) for channels in (1, 3))
    assert gray.shape == (20, 30, 1) and color.shape == (20, 30, 3)
    assert not np.allclose(color[..., 0], color[..., 1])


def test_replace_folder_swaps_a_staged_folder_in(tmp_path):
    from durr_tf.core import restorer_io

    destination, staging = tmp_path / "policy", tmp_path / "policy.partial"
    for folder, text in ((destination, "old"), (staging, "new")):
        folder.mkdir()
        (folder / "card.json").write_text(text)
    (tmp_path / "policy.old").mkdir()  # left by a run killed between the two renames
    restorer_io.replace_folder(str(staging), str(destination))
    assert (destination / "card.json").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["policy"]
    staging.mkdir()
    (staging / "card.json").write_text("first")
    restorer_io.replace_folder(str(staging), str(tmp_path / "fresh"))  # nothing to replace yet
    assert (tmp_path / "fresh" / "card.json").read_text() == "first"


def test_the_settings_without_a_flag_are_those_train_restorer_lacks():
    from absl import flags

    from durr_tf import train_restorer
    from durr_tf.training import trainer

    defined = flags.FlagValues()
    train_restorer.define_flags(defined)
    fields = {field.name for field in dataclasses.fields(trainer.TrainConfig)}
    assert fields - set(defined) == set(trainer.NO_FLAG)
