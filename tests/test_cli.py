"""Smoke runs of every command on tiny synthetic data, each command's `main` in the test's
process (training runs as processes of their own in test_interruption and test_multiworker)."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags
from PIL import Image

from tests.conftest import run_in_process, synthetic_gray


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_train_command_writes_a_run_and_resumes(smoke_run, image_dir, tmp_path):
    assert {"config.json", "restorer.json", "restorer.weights.h5", "ckpt"} <= set(
        os.listdir(smoke_run))
    run_dir = tmp_path / "run"
    shutil.copytree(smoke_run, run_dir)  # the other tests keep the run as it is
    result = run_in_process("durr_tf.train_restorer", "--smoke", "--steps", 8, "--train_set",
                            image_dir, "--val_set", image_dir, "--run_dir", run_dir)
    assert "resumed from" in result.stderr and "at step 6" in result.stderr  # absl logging
    assert "ETA" in result.stderr and "stopped at step 8" in result.stdout


def test_evaluate_command_tables_and_figures(smoke_run, image_dir, tmp_path):
    out = tmp_path / "eval"
    result = run_in_process("durr_tf.evaluate", "--set", image_dir, "--sigmas", "25,65",
                            "--stop", "oracle,refined,fixed:2,estimate,decorrelation", "--limit",
                            3, "--restorer", os.path.join(smoke_run, "restorer"), "--max_steps",
                            6, "--out", out)
    assert "| 65 | oracle |" in result.stdout
    results = json.load(open(out / "results.json"))
    assert results["images"] == 3
    for level, entry in results["levels"].items():
        rules = entry["rules"]
        assert all(rules["oracle"]["psnr"] >= r["psnr"] - 1e-9 for r in rules.values())
        assert rules["fixed:2"]["step_mean"] == 2
        assert rules["oracle"]["step_minus_oracle_mean"] == 0
        assert rules["oracle"]["steps"] == entry["oracle_steps"]
        # the mean curve covers every image to the same step, so a fixed N reads off it
        assert rules["fixed:2"]["psnr"] == pytest.approx(entry["psnr_curve"][2])
        best = entry["best_fixed"]
        assert best["psnr"] == pytest.approx(max(entry["psnr_curve"]))
        assert best["psnr"] >= rules["fixed:2"]["psnr"] - 1e-9
        assert best["psnr"] <= rules["oracle"]["psnr"] + 1e-9
    assert results["levels"]["25"]["input_psnr"] > results["levels"]["65"]["input_psnr"]
    assert "| 25 | best fixed N=" in result.stdout
    for name in ("results.md", "psnr_vs_step.png", "peak_step.png", "chosen_vs_oracle_step.png"):
        assert os.path.getsize(out / name) > 0


def _mixed_inputs(folder):
    folder.mkdir()
    gray = synthetic_gray(30, 41)
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(np.stack([gray, gray[::-1], gray[:, ::-1]], -1)).save(folder / "color.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "deep.png")
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 77)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    deep_color = np.stack([gray, gray[::-1], gray[:, ::-1]], -1).astype(np.uint16) * 257 + 3
    (folder / "deep_color.png").write_bytes(tf.io.encode_png(deep_color).numpy())
    Image.fromarray(np.dstack([gray, np.full_like(gray, 66)]), "LA").save(folder / "gray_alpha.png")
    Image.fromarray(synthetic_gray(5, 7)).save(folder / "tiny.png")
    (folder / "notes.png").write_text("not an image")


def test_restore_command_handles_every_kind_of_input(smoke_run, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _mixed_inputs(inputs)
    before = {name: _digest(inputs / name) for name in os.listdir(inputs)}
    restorer = os.path.join(smoke_run, "restorer")
    result = run_in_process("durr_tf.restore", inputs, "--out", out, "--restorer", restorer,
                            check=False)
    assert result.returncode == 1
    assert "notes.png" in result.stderr and "not a readable image" in result.stderr
    assert sorted(os.listdir(out)) == ["alpha.png", "color.png", "deep.png", "deep_color.png",
                                       "gray.png", "gray_alpha.png", "tiny.png"]
    assert Image.open(out / "color.png").mode == "RGB"
    assert Image.open(out / "alpha.png").mode == "RGBA"
    assert np.asarray(Image.open(out / "alpha.png"))[..., 3].max() == 77
    assert Image.open(out / "deep.png").mode.startswith("I")  # stays 16-bit
    header = (out / "deep_color.png").read_bytes()[:26]
    assert (header[24], header[25]) == (16, 2)  # 16-bit RGB stays 16-bit RGB
    assert Image.open(out / "gray_alpha.png").mode == "LA"  # restored as gray, alpha kept
    assert np.asarray(Image.open(out / "gray_alpha.png"))[..., 1].max() == 66
    assert Image.open(out / "tiny.png").size == (7, 5)
    assert before == {name: _digest(inputs / name) for name in os.listdir(inputs)}

    Image.fromarray(synthetic_gray(3, 3)).save(out / "gray.png")  # a user's existing file
    kept = _digest(out / "gray.png")
    again = run_in_process("durr_tf.restore", inputs / "gray.png", "--out", out, "--restorer",
                           restorer, check=False)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    assert _digest(out / "gray.png") == kept
    run_in_process("durr_tf.restore", inputs / "gray.png", "--out", out, "--restorer", restorer,
                   "--overwrite")
    assert Image.open(out / "gray.png").size == (41, 30)


def test_restore_never_writes_over_its_input(smoke_run, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(synthetic_gray(20, 20)).save(inputs / "photo.png")
    digest = _digest(inputs / "photo.png")
    result = run_in_process("durr_tf.restore", inputs / "photo.png", "--out", inputs,
                            "--overwrite", "--restorer", os.path.join(smoke_run, "restorer"),
                            check=False)
    assert result.returncode == 1 and "overwrite an input" in result.stderr
    assert _digest(inputs / "photo.png") == digest


def test_demo_command_table_and_figure(smoke_run, tmp_path):
    result = run_in_process("durr_tf.demo", "--restorer", os.path.join(smoke_run, "restorer"),
                            "--stop", "estimate", "--out", tmp_path)
    rows = json.load(open(tmp_path / "demo.json"))
    assert len(rows) == 9 and {r["sigma"] for r in rows} == {25, 50, 75}
    assert all(r["steps"] >= 1 for r in rows)
    assert "| camera | 25 |" in result.stdout
    assert os.path.getsize(tmp_path / "demo.png") > 10_000


def test_fetch_command_reports_an_incomplete_folder(tmp_path):
    result = run_in_process("data.fetch", "Set12", "--from", tmp_path, "--to", tmp_path / "t",
                            check=False)
    assert result.returncode == 1 and "01.png is missing" in result.stderr


def test_incomplete_command_lines_are_refused_before_any_work(tmp_path):
    with pytest.raises(app.UsageError, match="at least one image file or folder"):
        run_in_process("durr_tf.restore", "--out", tmp_path / "out")
    with pytest.raises(flags.IllegalFlagValueError, match="--out"):
        run_in_process("durr_tf.export", "--version", 2)
    with pytest.raises(app.UsageError, match="name one dataset: BSD68"):
        run_in_process("data.fetch", "--to", tmp_path)
    with pytest.raises(app.UsageError, match="--level_range takes two values"):
        run_in_process("agents.train_dqn", "--level_range", 10, "--run_dir", tmp_path)
    assert os.listdir(tmp_path) == []


def test_deblock_train_evaluate_and_restore(image_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = run_in_process("durr_tf.train_restorer", "--task", "deblock", "--smoke",
                            "--train_set", image_dir, "--val_set", image_dir, "--run_dir", run_dir)
    assert "QF20:" in result.stderr and "QF30:" in result.stderr  # validation, logged
    restorer = run_dir / "restorer"

    out = tmp_path / "eval"
    result = run_in_process("durr_tf.evaluate", "--task", "deblock", "--set", image_dir, "--qf",
                            "10,40", "--stop", "oracle,refined", "--limit", 2, "--max_steps", 9,
                            "--restorer", restorer, "--out", out)
    assert "| QF | stop |" in result.stdout
    levels = json.load(open(out / "results.json"))["levels"]
    assert levels["10"]["input_psnr"] < levels["40"]["input_psnr"]
    assert levels["10"]["rules"]["refined"]["step_mean"] == 8  # QF 10 extrapolates to 8

    inputs = tmp_path / "in"
    inputs.mkdir()
    gray = synthetic_gray(40, 48)
    photo = np.stack([gray, gray[::-1], np.full_like(gray, 90)], -1)
    Image.fromarray(photo).save(inputs / "photo.jpg", quality=15)
    Image.fromarray(gray).save(inputs / "gray.jpg", quality=15)
    Image.fromarray(gray).save(inputs / "plain.png")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    # the blind stop: the shipped policy, deblock's default, belongs to the shipped restorer
    result = run_in_process("durr_tf.restore", "--task", "deblock", inputs, "--out",
                            tmp_path / "o", "--restorer", restorer, "--stop", "estimate",
                            check=False)
    assert result.returncode == 1 and "broken.jpg" in result.stderr
    restored = np.asarray(Image.open(tmp_path / "o" / "photo.png"), np.float64)
    assert restored.shape == (40, 48, 3)
    original = np.asarray(Image.open(inputs / "photo.jpg"), np.float64)
    assert np.abs(restored - original).mean() < 3  # only Y changes, and little after smoke training
    assert Image.open(tmp_path / "o" / "gray.png").mode == "L"
    assert Image.open(tmp_path / "o" / "plain.png").size == (48, 40)


def test_decoding_ahead_keeps_order_and_reports_bad_files(tmp_path):
    from durr_tf.inference.restorer import decode_ahead

    Image.fromarray(synthetic_gray(9, 7)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    Image.fromarray(synthetic_gray(5, 11)).save(tmp_path / "c.png")
    files = [str(tmp_path / n) for n in ("a.png", "b.png", "c.png", "missing.png")]
    decoded = list(decode_ahead(files))
    assert [d[0].shape if d[0] is not None else None for d in decoded] == [
        (9, 7, 1), None, (5, 11, 1), None]
    assert decoded[0][1] == 8 and "b.png" in decoded[1][2] and "missing.png" in decoded[3][2]


def test_restore_folder_of_odd_and_broken_files(smoke_run, tmp_path):
    """Every kind of file a folder may hold: the good ones are restored, each bad one is named
    with its problem, and no input changes."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    gray = synthetic_gray(24, 30)
    Image.fromarray(np.dstack([gray] * 4), "CMYK").save(inputs / "cmyk.jpg")
    Image.fromarray(np.dstack([gray] * 3)).convert("P").save(inputs / "palette.png")
    Image.fromarray(gray[:1, :1]).save(inputs / "one_pixel.png")
    Image.fromarray(synthetic_gray(3, 2000)).save(inputs / "thin.png")
    Image.fromarray(synthetic_gray(120, 100)).save(inputs / "large.png")
    Image.fromarray(gray).save(inputs / "whole.jpg", quality=50)
    (inputs / "cut.jpg").write_bytes((inputs / "whole.jpg").read_bytes()[:200])
    (inputs / "empty.png").write_bytes(b"")
    before = {name: _digest(inputs / name) for name in os.listdir(inputs)}
    result = run_in_process("durr_tf.restore", inputs, "--out", out, "--max_pixels", 10_000,
                            "--restorer", os.path.join(smoke_run, "restorer"), check=False)
    assert result.returncode == 1
    problems = dict(line.strip().split(": ", 1) for line in result.stderr.splitlines()
                    if line.startswith(f"  {inputs}"))
    assert sorted(problems) == sorted(str(inputs / n) for n in ("cut.jpg", "empty.png",
                                                                "large.png"))
    assert "empty" in problems[str(inputs / "empty.png")]
    assert "over the limit of 10000 pixels" in problems[str(inputs / "large.png")]
    assert sorted(os.listdir(out)) == ["cmyk.png", "one_pixel.png", "palette.png", "thin.png",
                                       "whole.png"]
    assert Image.open(out / "thin.png").size == (2000, 3)
    assert Image.open(out / "cmyk.png").mode == "RGB"
    assert before == {name: _digest(inputs / name) for name in os.listdir(inputs)}


def test_a_folder_gives_the_images_its_files_would_give_by_name(tmp_path):
    """GIF and WebP in a folder are restored as when named; what else the folder holds is
    named, not passed over in silence."""
    from durr_tf.inference.restorer import collect_inputs, restore_files

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.gif", "b.webp", "c.png"):
        Image.fromarray(synthetic_gray(10, 12)).save(inputs / name)
    (inputs / "notes.txt").write_text("not an image")
    (inputs / "sub").mkdir()
    (inputs / ".hidden").write_text("a dotfile")
    log = []
    files = collect_inputs([str(inputs)], log=log.append)
    assert files == [str(inputs / n) for n in ("a.gif", "b.webp", "c.png")]
    assert [line.split(":")[0] for line in log] == [f"skipped {inputs / 'notes.txt'}",
                                                    f"skipped {inputs / 'sub'}"]
    assert "not an image file" in log[0] and ".gif" in log[0] and "a folder" in log[1]
    assert collect_inputs([str(inputs / "notes.txt")], log=log.append) == [
        str(inputs / "notes.txt")]  # a named file is tried whatever its extension

    def identity(image):
        return image, np.array([1])

    failures = restore_files(identity, files, str(tmp_path / "out"), log=log.append)
    assert failures == {}
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png", "c.png"]


def test_out_naming_a_file_says_so_and_keeps_the_file(tmp_path):
    from durr_tf.inference.restorer import check_out_folder

    taken = tmp_path / "notes.txt"
    taken.write_text("a user's file")
    with pytest.raises(app.UsageError, match=f"--out {taken} is a file; --out names the folder"):
        check_out_folder(str(taken))
    with pytest.raises(app.UsageError, match=f"cannot be made: {taken} is a file"):
        check_out_folder(str(taken / "restored"))
    assert taken.read_text() == "a user's file"
    check_out_folder(str(tmp_path))
    check_out_folder(str(tmp_path / "new" / "folder"))
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
