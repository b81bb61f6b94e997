"""The side-by-side benchmark: its cache, its peer check, its README section, and a tiny run."""

import dataclasses
import json
import os
from importlib import resources

import numpy as np
import pytest
from absl import app
from PIL import Image

from data import sets
from durr_tf.core import restorer_io, tasks
from durr_tf.evaluation import metrics
from durr_tf.tools.benchmark import cache, figures, methods, report
from durr_tf.training import history
from tests.conftest import run_in_process, synthetic_gray

PEERS_DIR = os.environ.get("DURR_PEERS_DIR", "")


def test_cache_is_reused_only_for_the_same_images_and_seed(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"m": {"psnr": float(len(calls))}}

    first = cache.cached_results(str(tmp_path), "denoise", "m", ["a/x.png"], 25.0, 0, compute)
    again = cache.cached_results(str(tmp_path), "denoise", "m", ["b/x.png"], 25.0, 0, compute)
    assert first == again == {"m": {"psnr": 1.0}} and len(calls) == 1
    other_seed = cache.cached_results(str(tmp_path), "denoise", "m", ["x.png"], 25.0, 1, compute)
    other_images = cache.cached_results(str(tmp_path), "denoise", "m", ["y.png"], 25.0, 1,
                                        compute)
    more_images = cache.cached_results(str(tmp_path), "denoise", "m", ["y.png", "z.png"], 25.0,
                                       1, compute)
    assert other_seed == {"m": {"psnr": 2.0}} and other_images == {"m": {"psnr": 3.0}}
    assert more_images == {"m": {"psnr": 4.0}}  # a subset and a whole set are cached apart
    assert cache.cached_results(str(tmp_path), "denoise", "m", ["y.png"], 25.0, 1,
                                compute) == {"m": {"psnr": 3.0}}
    assert not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tmp")]


def test_durr_rows_are_recomputed_when_the_shipped_model_changes(tmp_path, monkeypatch):
    prefix = tmp_path / "denoise_gray"
    (tmp_path / "denoise_gray.weights.h5").write_bytes(b"weights")
    (tmp_path / "denoise_gray_policy").mkdir()
    (tmp_path / "denoise_gray_policy" / "saved_model.pb").write_bytes(b"graph")
    monkeypatch.setattr(restorer_io, "pretrained_prefix", lambda task: str(prefix))
    calls = []

    def compute():
        calls.append(1)
        return {"DURR learned stop": {"psnr": float(len(calls))}}

    def rows():
        return cache.cached_results(str(tmp_path / "out"), "denoise", methods.DURR, ["x.png"],
                                    25.0, 0, compute,
                                    methods.model_digest("denoise", methods.DURR))

    assert rows() == rows() and len(calls) == 1
    (tmp_path / "denoise_gray_policy" / "card.json").write_text("{}")  # results only: reused
    assert rows() and len(calls) == 1
    (tmp_path / "denoise_gray_policy" / "stop_margin.json").write_text('{"margin": {}}')
    assert rows() == {"DURR learned stop": {"psnr": 2.0}}


def test_peer_check_holds_the_peers_to_their_published_figures():
    rows = methods.check_rows({("DnCNN-B", 15): (31.63, 68), ("DnCNN-B", 25): (29.05, 68),
                               ("DnCNN-3", 10): (29.19, 29)})
    by_level = {row["level"]: row for row in rows}
    assert by_level[15]["met"] and by_level[15]["published"] == 31.61
    assert not by_level[25]["met"]  # 0.11 dB off
    assert by_level[10]["met"] and by_level[10]["images"] == 29


def test_published_figures_name_their_paper_and_a_known_method():
    data = json.loads(resources.files(methods.__package__).joinpath("published.json").read_text())
    for table in data["tables"]:
        assert table["paper"] in data["papers"] and table["table"]
        assert table["task"] in methods.LEVELS
        assert set(table["psnr"]) <= set(methods.COLUMNS)
    assert methods.PUBLISHED["denoise"]["BM3D"] == {
        15: 31.07, 25: 28.55, 35: 27.07, 45: 25.99, 50: 25.62, 55: 25.26, 65: 24.69, 75: 22.63}


def test_readme_section_is_replaced_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold\n{report.END}\nafter\n")
    report.replace_section(str(readme), "new table\n")
    assert readme.read_text() == f"intro\n{report.START}\nnew table\n{report.END}\nafter\n"
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        report.replace_section(str(tmp_path / "plain.md"), "x")


def test_color_table_shows_peers_known_only_by_their_published_figures():
    row = {"psnr": 30.9, "ssim": 0.87, "seconds": 20.0, "steps": None}
    results = {"denoise_color": {"set": "CBSD68", "images": 1,
                                 "levels": {"25": {"CBM3D": row}, "35": {"CBM3D": row}}}}
    text = report.markdown(results, [], {"CBM3D": 0}, "figures")
    assert "| σ | CBM3D | CDnCNN-B |" in text
    assert "| 25 | 30.90 / 0.8700 (30.71) | – (31.23) |" in text
    assert "| 35 | 30.90 / 0.8700 | – |" in text


def test_speed_table_names_the_machines_its_rows_were_timed_on():
    """Cached rows come from different runs: each speed row names the machines that timed it,
    and rows cached before machines were recorded say so."""
    timed = {"psnr": 30.9, "ssim": 0.87, "seconds": 20.0, "steps": None, "timed_on": "CPU A"}
    unrecorded = {"psnr": 29.9, "ssim": 0.85, "seconds": 30.0, "steps": None}
    results = {"denoise_color": {"set": "CBSD68", "images": 1,
                                 "levels": {"25": {"CBM3D": timed}, "35": {"CBM3D": unrecorded}}}}
    text = report.markdown(results, [], {"CBM3D": 0}, "figures")
    assert "| CBM3D (CBSD68) | – | 25.00 | – | CPU A; not recorded |" in text


def test_unknown_methods_are_refused(tmp_path):
    with pytest.raises(app.UsageError, match=r"unknown methods \['WNNM'\]"):
        run_in_process("durr_tf.tools.benchmark", "--methods", "WNNM", "--out", tmp_path)
    assert os.listdir(tmp_path) == []


def _crops_of_the_sets(monkeypatch, folder, side=64):
    """Makes `sets.resolve` give centre crops, side × side, of the first images of each
    registered set: the benchmark's methods, tables and figures as on the whole images, at a
    fraction of the work."""
    resolve = sets.resolve

    def cropped(name, data_dir=None):
        files = resolve(name, data_dir)[:2]
        (folder / name).mkdir(parents=True, exist_ok=True)
        crops = []
        for file in files:
            image = Image.open(file)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            crops.append(str(folder / name / os.path.basename(file)))
            image.crop((left, top, left + side, top + side)).save(crops[-1])
        return crops

    monkeypatch.setattr(sets, "resolve", cropped)


@pytest.mark.parametrize("name", ["BM3D", "CBM3D"])
def test_bm3d_peers_remove_the_noise_of_the_level_they_are_told(name):
    peer = methods.PEERS[name]
    task = tasks.get(peer.task)
    gray = synthetic_gray(48, 48)
    clean = task.prepare_clean(np.stack([gray, gray[::-1], gray[:, ::-1]], axis=-1) / 255.0)
    noisy = task.degrade(clean, 25, (0, 25))
    restored = peer.load(PEERS_DIR)(noisy, 25)
    assert restored.shape == noisy.shape
    assert metrics.psnr(restored, clean) > metrics.psnr(noisy, clean) + 5


def _identity_in_place_of_bm3d(monkeypatch):
    """BM3D and CBM3D take a second or more per call at any image size; the run below checks
    the benchmark's plumbing, so an identity stands in for them (their own test is above)."""
    for name in ("BM3D", "CBM3D"):
        monkeypatch.setitem(methods.PEERS, name, dataclasses.replace(
            methods.PEERS[name], load=lambda peers_dir: lambda degraded, level: degraded))


@pytest.mark.skipif(not (os.environ.get("DURR_DATA_DIR") and os.path.isdir(PEERS_DIR)),
                    reason="needs DURR_DATA_DIR and DURR_PEERS_DIR")
def test_one_image_run_writes_tables_figures_and_the_readme_section(monkeypatch, tmp_path):
    _crops_of_the_sets(monkeypatch, tmp_path / "sets")
    _identity_in_place_of_bm3d(monkeypatch)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.START}\n{report.END}\n")
    out = tmp_path / "bench"
    result = run_in_process("durr_tf.tools.benchmark", "--limit", 1, "--nopeer_check", "--out",
                            out, "--readme", readme)
    results = json.load(open(out / "results.json"))["results"]
    denoise = results["denoise"]["levels"]
    assert results["denoise"]["images"] == 1 and list(denoise) == [
        "15", "25", "35", "45", "50", "55", "65", "75"]
    for row in denoise.values():
        assert set(row) == {"BM3D", "DnCNN-B", *methods.DURR_ROWS}
        assert row[methods.ORACLE]["psnr"] >= row[methods.LEARNED]["psnr"] - 1e-9
        assert row[methods.ORACLE]["psnr"] >= row[methods.BEST_FIXED]["psnr"] - 1e-9
        assert row["BM3D"]["seconds"] > 0 and row[methods.LEARNED]["steps"] >= 1
        assert row["BM3D"]["timed_on"] == row[methods.LEARNED]["timed_on"] == history.machine()
    for row in results["deblock"]["levels"].values():
        assert row["DnCNN-3"]["psnr"] > row["JPEG"]["psnr"]
    for row in results["denoise_color"]["levels"].values():
        assert set(row) == {"CBM3D", *methods.DURR_ROWS}
        assert row[methods.ORACLE]["psnr"] >= row[methods.LEARNED]["psnr"] - 1e-9
    assert "| 25 | " in result.stdout and "Peer check" not in result.stdout
    assert "ETA" in result.stderr  # computed results log their progress
    for name, _ in figures.FIGURES:
        assert os.path.getsize(out / name) > 0
    assert "psnr_vs_level.png" in readme.read_text()
    cached = run_in_process("durr_tf.tools.benchmark", "--limit", 1, "--nopeer_check", "--out",
                            out, "--noreport")
    assert "ETA" not in cached.stderr  # every result came from the cache (no progress logged)
