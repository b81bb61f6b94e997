"""The Table 1 ablation command, in its smoke configuration on synthetic images."""

import json

from durr_tf.tools import ablation
from durr_tf.training import history
from tests.conftest import run_in_process


def test_ablation_trains_three_units_with_one_budget_and_tables_them(image_dir, tmp_path):
    args = ["--smoke", "--steps", 2, "--train_set", image_dir, "--val_set", image_dir,
            "--set", image_dir, "--limit", 1, "--sigmas", "25,45", "--runs_dir",
            tmp_path / "runs", "--out", tmp_path / "out"]
    first = run_in_process("durr_tf.tools.ablation", *args)
    assert first.stderr.count("train 2/2") == 3  # three units, each to the same budget
    results = json.load(open(tmp_path / "out" / "results.json"))
    assert list(results["strategies"]) == list(ablation.STRATEGIES)
    assert results["images"] == 1
    assert results["command"] == "python -m durr_tf.tools.ablation " + " ".join(map(str, args))
    table = (tmp_path / "out" / "results.md").read_text()
    for name, entry in results["strategies"].items():
        assert entry["train_steps"] == 2 and set(entry["levels"]) == {"25", "45"}
        assert all(v["peak_step"] >= 0 for v in entry["levels"].values())
        # each of our peaks beside the paper's figure at the same σ
        ours = {s: entry["levels"][s]["peak_psnr"] for s in ("25", "45")}
        paper = ablation.PAPER_TABLE1[name]
        assert (f"| {name} | {ours['25']:.2f} ({paper[25]:.2f}) | {ours['45']:.2f} "
                f"({paper[45]:.2f}) |") in table
    assert (tmp_path / "out" / "table1.png").stat().st_size > 0
    again = run_in_process("durr_tf.tools.ablation", *args)  # finished units are not trained again
    assert "train " not in again.stderr and "| naive σ=40 |" in again.stdout
    for name in ablation.STRATEGIES:  # nor resumed: their histories hold one phase
        rows = history.read(ablation.run_folder(str(tmp_path / "runs"), name))
        assert [row["step"] for row in rows if row["kind"] == "phase"] == [0]
