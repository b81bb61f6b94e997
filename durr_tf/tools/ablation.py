"""The paper's Table 1 ablation: which unrolling in training (the paper's "training policy")
gives the best restoration unit.

    python -m durr_tf.tools.ablation --steps 200 --limit 17 --out docs/results/ablation

Trains three denoising units from the same initial weights with the same budget (batches of
24 patches of 64×64): the naive policy (N = 8) on σ = 40, the naive policy on σ ∈ {35, 45}
and the refined policy ((35, 6), (45, 9)) on σ ∈ {35, 45}; then prints their peak (oracle)
PSNR on BSD68 at σ = 25…55 beside the paper's figures and plots peak PSNR and peak step
against σ (the paper's Fig. 4). Each unit trains in its own run folder, so a killed run
resumes, and a finished one is only evaluated again.
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from data import sets  # noqa: E402
from durr_tf.core import restorer_io, tasks  # noqa: E402
from durr_tf.evaluation import evaluator  # noqa: E402
from durr_tf.training import trainer  # noqa: E402

STRATEGIES = {
    "naive σ=40": dict(train_levels=(40.0,), unrolling="naive", naive_steps=8),
    "naive σ∈{35,45}": dict(train_levels=(35.0, 45.0), unrolling="naive", naive_steps=8),
    "refined σ∈{35,45}": dict(train_levels=(35.0, 45.0), unrolling="refined"),
}
# The paper's Table 1 (peak PSNR on BSD68), in the order of STRATEGIES.
PAPER_TABLE1 = {
    "naive σ=40": {25: 28.61, 30: 28.13, 35: 27.62, 40: 27.19, 45: 26.57, 50: 26.17, 55: 24.00},
    "naive σ∈{35,45}": {25: 27.74, 30: 27.17, 35: 26.66, 40: 26.24, 45: 26.75, 50: 25.61,
                        55: 24.75},
    "refined σ∈{35,45}": {25: 29.14, 30: 28.33, 35: 27.67, 40: 27.19, 45: 27.69, 50: 26.61,
                          55: 25.88},
}

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_integer("steps", 200, "Training batches per unit (the equal budget).", **into)
    flags.DEFINE_string("runs_dir", "runs/ablation", "Folder of the three run folders.", **into)
    flags.DEFINE_list("sigmas", ["25", "30", "35", "40", "45", "50", "55"], "Test noise levels.",
                      **into)
    flags.DEFINE_string("train_set", "Train400", "Training set name or image folder.", **into)
    flags.DEFINE_string("val_set", "Set12", "Validation set name or image folder.", **into)
    flags.DEFINE_string("set", "BSD68", "Test set name or image folder.", **into)
    flags.DEFINE_integer("limit", 0, "Evaluate on the first N images only (0 = all).", **into)
    flags.DEFINE_string("data_dir", "", "Folder holding the datasets (else DURR_DATA_DIR, cache).",
                        **into)
    flags.DEFINE_string("out", "results/ablation", "Output folder for JSON, Markdown and figures.",
                        **into)
    flags.DEFINE_bool("smoke", False, "Tiny configuration for tests (seconds).", **into)


def run_folder(runs_dir, name):
    """An ASCII folder name for a strategy: "refined σ∈{35,45}" -> refined_sigma_35_45."""
    words = "".join(c if c.isalnum() else " " for c in name.replace("σ", "sigma"))
    return os.path.join(runs_dir, "_".join(words.split()))


def finished(run_dir, steps):
    """Whether the run folder holds a unit's weights exported after `steps` batches or more
    (the `train_steps` of the card the trainer writes beside them)."""
    prefix = os.path.join(run_dir, "restorer")
    return (os.path.exists(prefix + ".json")
            and restorer_io.read_card(prefix)["train_steps"] >= steps)


def train_all(runs_dir, steps, smoke=False, **data):
    """Trains (or resumes, or skips when done) each strategy's unit; returns their run folders.

    `data` holds TrainConfig's train_set, val_set and data_dir."""
    folders = {}
    for name, strategy in STRATEGIES.items():
        folders[name] = run_folder(runs_dir, name)
        if finished(folders[name], steps):
            logging.info("%s: done, %d batches in %s", name, steps, folders[name])
            continue
        settings = dict(trainer.SMOKE) if smoke else {}
        settings.update(strategy, task="denoise", run_dir=folders[name], **data)
        settings["steps"] = steps
        logging.info("%s: %d batches in %s", name, steps, folders[name])
        if trainer.Trainer(trainer.TrainConfig(**settings)).fit() < steps:
            sys.exit(f"stopped during {name} (signal or time budget); the same command "
                     "resumes it")
    return folders


def evaluate_all(folders, files, sigmas):
    """{strategy: {σ: {"peak_psnr", "peak_step"}}} from the oracle stop on every image."""
    task = tasks.get("denoise")
    table = {}
    for name, folder in folders.items():
        cell, card = restorer_io.load_restorer(os.path.join(folder, "restorer"))
        results = evaluator.evaluate(cell, task, files, sigmas, ["oracle"])
        table[name] = {"train_steps": card["train_steps"], "levels": {
            level: {"peak_psnr": entry["rules"]["oracle"]["psnr"],
                    "peak_step": entry["oracle_step_mean"]}
            for level, entry in results["levels"].items()}}
    return table


def markdown(table):
    sigmas = list(next(iter(table.values()))["levels"])
    lines = ["| training | " + " | ".join(f"σ={s}" for s in sigmas) + " |",
             "|---|" + "---|" * len(sigmas)]
    for name, entry in table.items():
        cells = []
        for s in sigmas:
            paper = PAPER_TABLE1[name].get(int(float(s)))
            ours = f"{entry['levels'][s]['peak_psnr']:.2f}"
            cells.append(f"{ours} ({paper:.2f})" if paper else ours)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(table, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, entry in table.items():
        sigmas = [float(s) for s in entry["levels"]]
        line = left.plot(sigmas, [v["peak_psnr"] for v in entry["levels"].values()],
                         marker="o", label=f"{name} (ours)")[0]
        paper = PAPER_TABLE1[name]
        left.plot(list(paper), list(paper.values()), linestyle=":", color=line.get_color(),
                  label=f"{name} (paper)")
        right.plot(sigmas, [v["peak_step"] for v in entry["levels"].values()], marker="o",
                   label=name)
    left.set(xlabel="σ", ylabel="mean peak PSNR (dB)", title="Peak PSNR on BSD68 (Table 1)")
    right.set(xlabel="σ", ylabel="mean peak step", title="Peak step on BSD68 (Fig. 4)")
    evaluator.save_figure(fig, (left, right), path)


def main(argv):
    del argv
    folders = train_all(FLAGS.runs_dir, FLAGS.steps, FLAGS.smoke, train_set=FLAGS.train_set,
                        val_set=FLAGS.val_set, data_dir=FLAGS.data_dir)
    files = sets.resolve(FLAGS.set, FLAGS.data_dir or None)
    files = files[: FLAGS.limit] if FLAGS.limit else files
    table = evaluate_all(folders, files, [float(s) for s in FLAGS.sigmas])
    os.makedirs(FLAGS.out, exist_ok=True)
    text = markdown(table)
    command = "python -m durr_tf.tools.ablation " + " ".join(sys.argv[1:])
    with open(os.path.join(FLAGS.out, "results.json"), "w") as handle:
        json.dump({"command": command, "set": FLAGS.set, "images": len(files),
                   "budget_batches": FLAGS.steps, "strategies": table,
                   "paper": PAPER_TABLE1}, handle, indent=2)
    with open(os.path.join(FLAGS.out, "results.md"), "w") as handle:
        handle.write(f"Peak PSNR (dB) on {FLAGS.set} ({len(files)} images), ours (paper); "
                     f"{FLAGS.steps} batches per unit. `{command}`\n\n{text}")
    plot(table, os.path.join(FLAGS.out, "table1.png"))
    print(text)
    print(f"wrote {FLAGS.out}/results.json, results.md and table1.png")


if __name__ == "__main__":
    define_flags()
    app.run(main)
