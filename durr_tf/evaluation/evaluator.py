"""Scoring stop rules on a set (`python -m durr_tf.evaluate`): Markdown + JSON tables, figures.

Each image is degraded once per level with a fixed seed, the restorer is unrolled once, and
every stop rule is applied to that same trajectory: causal rules (fixed, refined, estimate)
see the iterates in order; the oracle picks the step of highest PSNR (the paper's peak PSNR).
The trajectory ends at --max_steps, or once every rule has stopped and the PSNR has fallen
for --patience steps after its peak.
"""

import itertools
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from durr_tf.core import stop_rules, tasks, unroll  # noqa: E402
from durr_tf.evaluation import metrics  # noqa: E402
from durr_tf.core.progress import Progress  # noqa: E402

ORACLE = "oracle"


class TrajectoryEvaluator:
    """Unrolls one degraded image and applies every stop rule to the same trajectory.

    The oracle's early exit (all rules stopped and `patience` steps without a new peak) would
    miss a second, later peak; PSNR curves of the restorer rise to one peak and then fall.
    """

    def __init__(self, cell, task, stops, max_steps=unroll.DEFAULT_MAX_STEPS, patience=3):
        self.task, self.stops = task, stops
        self.max_steps, self.patience = max_steps, patience
        # Rules keep their state outside (initial_state), so one object serves every image;
        # only the refined map depends on the level. A learned policy is loaded once.
        self.rules = {s: stop_rules.parse_stop_rule(s, task.name)
                      for s in stops if s not in (ORACLE, "refined")}
        self.stepper = unroll.Stepper(cell)

    def run(self, degraded, clean, level):
        x0 = tf.constant(degraded[None], tf.float32)
        rules = {s: self.rules.get(s) or stop_rules.parse_stop_rule(s, self.task.name, level)
                 for s in self.stops if s != ORACLE}
        states = {s: rule.initial_state(x0) for s, rule in rules.items()}
        chosen, iterates, curve = {}, [], []
        for n, x in enumerate(self.stepper.trajectory(x0, self.max_steps)):
            iterates.append(x[0].numpy())
            curve.append(metrics.psnr(iterates[-1], clean))
            for name, rule in rules.items():
                if name not in chosen:
                    stop, states[name] = rule(tf.constant(n), x, states[name])
                    if bool(stop[0]):
                        chosen[name] = n
            past_peak = n - int(np.argmax(curve)) >= self.patience
            if len(chosen) == len(rules) and past_peak:
                break
        for name in rules:
            chosen.setdefault(name, len(curve) - 1)
        best = int(stop_rules.oracle_steps(np.array(curve)[:, None])[0])
        if ORACLE in self.stops:
            chosen[ORACLE] = best
        return chosen, iterates, curve, best, x

    def extend(self, last, clean, curve, steps):
        """Steps on from the `last` iterate until `curve` holds `steps` + 1 PSNR values (the
        trajectory's first iterate, `last` itself, is in `curve` already)."""
        missing = min(steps, self.max_steps) + 1 - len(curve)
        for x in itertools.islice(self.stepper.trajectory(last, missing), 1, None):
            curve.append(metrics.psnr(x[0].numpy(), clean))
        return curve


def degrade_set(task, cleans, level, seed=0):
    """The degraded inputs of a set at one level: image i gets seed (seed, 1000·i + level), so
    every method and every run sees the same noise."""
    return [task.degrade(clean, level, (seed, 1000 * i + int(level)))
            for i, clean in enumerate(cleans)]


def evaluate(cell, task, files, levels, stops, max_steps=unroll.DEFAULT_MAX_STEPS, patience=3,
             seed=0, border=0, evaluator=None):
    """Returns the results dict (see `write_results`) for a restorer on a list of files.

    `evaluator`: a `TrajectoryEvaluator` of this cell, task and these stops and settings, for
    callers that evaluate one level at a time, so that its compiled step is traced once."""
    evaluator = evaluator or TrajectoryEvaluator(cell, task, stops, max_steps, patience)
    cleans = [task.read_clean(path) for path in files]
    results = {"task": task.name, "level_name": task.level_name, "images": len(files),
               "stops": list(stops), "max_steps": max_steps, "levels": {}}
    progress = Progress(len(files) * len(levels), label="evaluate")
    for level_index, level in enumerate(levels):
        per_rule = {s: {"psnr": [], "ssim": [], "step": []} for s in stops}
        inputs, curves, oracle, last_iterates = [], [], [], []
        degraded_set = degrade_set(task, cleans, level, seed)
        for i, (clean, degraded) in enumerate(zip(cleans, degraded_set)):
            chosen, iterates, curve, best, last = evaluator.run(degraded, clean, level)
            inputs.append(curve[0])
            curves.append(curve)
            oracle.append(best)
            last_iterates.append(last)
            ssim_at = {step: metrics.ssim(iterates[step], clean, border)
                       for step in set(chosen.values())}
            for name, step in chosen.items():
                per_rule[name]["psnr"].append(curve[step])
                per_rule[name]["ssim"].append(ssim_at[step])
                per_rule[name]["step"].append(step)
            progress.update(level_index * len(cleans) + i + 1, f"{task.level_name}={level:g}")
        # Every image's curve to the same length, for the mean curve and the best fixed N.
        longest = max(len(c) for c in curves) - 1
        curves = [evaluator.extend(x, clean, curve, longest)
                  for x, clean, curve in zip(last_iterates, cleans, curves)]
        mean_curve = np.mean(np.array(curves), axis=0)
        best_fixed = int(np.argmax(mean_curve))
        results["levels"][f"{level:g}"] = {
            "input_psnr": float(np.mean(inputs)),
            "psnr_curve": [float(v) for v in mean_curve],
            "oracle_step_mean": float(np.mean(oracle)),
            "oracle_steps": [int(n) for n in oracle],
            "best_fixed": {"steps": best_fixed, "psnr": float(mean_curve[best_fixed])},
            "rules": {name: {
                "steps": [int(n) for n in v["step"]],
                "psnr": float(np.mean(v["psnr"])), "ssim": float(np.mean(v["ssim"])),
                "step_mean": float(np.mean(v["step"])), "step_std": float(np.std(v["step"])),
                "step_minus_oracle_mean": float(np.mean(np.subtract(v["step"], oracle))),
                "step_minus_oracle_std": float(np.std(np.subtract(v["step"], oracle))),
            } for name, v in per_rule.items()},
        }
    return results


def markdown_table(results):
    """One row per level and rule, then the best single N for the whole set at that level
    (chosen with the clean images, like the oracle; its SSIM is not computed)."""
    name = tasks.get(results["task"]).level_symbol
    lines = [f"| {name} | stop | PSNR (dB) | SSIM | mean step (± sd) | step − oracle (± sd) "
             "| input PSNR (dB) |", "|---|---|---|---|---|---|---|"]
    for level, entry in results["levels"].items():
        for rule, r in entry["rules"].items():
            lines.append(f"| {level} | {rule} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                         f"{r['step_mean']:.1f} ± {r['step_std']:.1f} | "
                         f"{r['step_minus_oracle_mean']:+.1f} ± {r['step_minus_oracle_std']:.1f} | "
                         f"{entry['input_psnr']:.2f} |")
        fixed = entry["best_fixed"]
        lines.append(f"| {level} | best fixed N={fixed['steps']} | {fixed['psnr']:.2f} | – | "
                     f"{fixed['steps']:.1f} ± 0.0 | – | {entry['input_psnr']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_figures(results, out_dir, title):
    """PSNR against step for each level, mean peak step against level (the paper's Fig. 4), and
    chosen against oracle step for the causal rules."""
    name = tasks.get(results["task"]).level_symbol
    fig, ax = plt.subplots(figsize=(6, 4))
    for level, entry in results["levels"].items():
        ax.plot(range(len(entry["psnr_curve"])), entry["psnr_curve"], marker=".",
                label=f"{name}={level}")
    ax.set(xlabel="step n", ylabel="mean PSNR (dB)", title=f"{title}: PSNR along the unrolling")
    save_figure(fig, [ax], os.path.join(out_dir, "psnr_vs_step.png"))

    levels = [float(level) for level in results["levels"]]
    peaks = [entry["oracle_step_mean"] for entry in results["levels"].values()]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(levels, peaks, marker="o", label="mean peak step (oracle)")
    task = tasks.get(results["task"])
    ax.plot(levels, stop_rules.refined_steps(task.refined_map, tf.constant(levels)).numpy(),
            linestyle="--", label="refined training map (extrapolated)")
    ax.set(xlabel=name, ylabel="step", title=f"{title}: peak step against {name}")
    save_figure(fig, [ax], os.path.join(out_dir, "peak_step.png"))
    plot_chosen_steps(results, out_dir, title)


def plot_chosen_steps(results, out_dir, title):
    """Chosen against oracle step, one panel per causal rule, one color per level."""
    rules = [r for r in results["stops"] if r != ORACLE]
    if not rules:
        return
    name = tasks.get(results["task"]).level_symbol
    fig, axes = plt.subplots(1, len(rules), figsize=(4 * len(rules), 4), squeeze=False)
    jitter = np.random.default_rng(0)
    for ax, rule in zip(axes[0], rules):
        top = 1
        for level, entry in results["levels"].items():
            oracle, chosen = np.array(entry["oracle_steps"]), np.array(entry["rules"][rule]["steps"])
            ax.scatter(oracle + jitter.uniform(-0.2, 0.2, oracle.size),
                       chosen + jitter.uniform(-0.2, 0.2, chosen.size), s=8, alpha=0.6,
                       label=f"{name}={level}")
            top = max(top, oracle.max(), chosen.max())
        ax.plot([0, top], [0, top], color="gray", linewidth=0.8)
        ax.set(xlabel="oracle (peak) step", ylabel="chosen step", title=f"{title}: {rule}")
    save_figure(fig, axes[0], os.path.join(out_dir, "chosen_vs_oracle_step.png"))


def save_figure(fig, axes, path):
    """Grid and legend on each axis, then writes the figure as PNG and closes it."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(results, out_dir, title):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    table = markdown_table(results)
    with open(os.path.join(out_dir, "results.md"), "w") as handle:
        handle.write(f"### {title}\n\n{table}")
    plot_figures(results, out_dir, title)
    return table
