"""The Table 1 ablation command, in its smoke configuration on synthetic images."""

import json

from durr_tf.tools import ablation
from tests.conftest import run_module


def test_ablation_trains_three_units_with_one_budget_and_tables_them(image_dir, tmp_path):
    args = ["--smoke", "--steps", 2, "--train_set", image_dir, "--val_set", image_dir,
            "--set", image_dir, "--limit", 2, "--sigmas", "25,45", "--runs_dir",
            tmp_path / "runs", "--out", tmp_path / "out"]
    first = run_module("durr_tf.tools.ablation", *args)
    assert first.stderr.count("train 2/2") == 3  # three units, each to the same budget
    results = json.load(open(tmp_path / "out" / "results.json"))
    assert list(results["strategies"]) == list(ablation.STRATEGIES)
    for entry in results["strategies"].values():
        assert entry["train_steps"] == 2 and set(entry["levels"]) == {"25", "45"}
        assert all(v["peak_step"] >= 0 for v in entry["levels"].values())
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| refined σ∈{35,45} |" in table and "(29.14)" in table
    assert (tmp_path / "out" / "table1.png").stat().st_size > 0
    again = run_module("durr_tf.tools.ablation", *args)  # finished units are not trained again
    assert "train " not in again.stderr and "| naive σ=40 |" in again.stdout
