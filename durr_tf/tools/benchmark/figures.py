"""The benchmark's figures: PSNR against level beside the papers' figures, the peak step, image
panels with zoomed crops, and the learned stop on real noisy photos (RNI6, RNI15)."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data import sets  # noqa: E402
from durr_tf.core import stop_rules, tasks  # noqa: E402
from durr_tf.evaluation import evaluator, metrics  # noqa: E402
from durr_tf.tools.benchmark import methods  # noqa: E402

FIGURES = [("psnr_vs_level.png", "PSNR against σ and QF for every method"),
           ("peak_step.png", "Mean peak (oracle) step against σ and QF"),
           ("panels_sigma35.png", "BSD68 at σ=35"),
           ("panels_sigma65.png", "BSD68 at σ=65 (unseen in training)"),
           ("panels_qf10.png", "LIVE1 at QF=10 (unseen in training)"),
           ("panels_color_sigma50.png", "CBSD68 at σ=50, color model"),
           ("rni6.png", "Real noisy photos (RNI6) and the learned stop's output"),
           ("rni15.png", "Real noisy color photos (RNI15) and the color model's learned stop")]


def draw(results, out, limit, seed, peers_dir, data_dir=None):
    """Writes every figure of FIGURES into `out`."""
    plot_levels(results, out)
    for task_name, name, level, peer_names in [
            ("denoise", "panels_sigma35.png", 35.0, ["BM3D", "DnCNN-B"]),
            ("denoise", "panels_sigma65.png", 65.0, ["BM3D", "DnCNN-B"]),
            ("deblock", "panels_qf10.png", 10.0, ["DnCNN-3"]),
            ("denoise_color", "panels_color_sigma50.png", 50.0, ["CBM3D"])]:
        plot_panels(tasks.get(task_name), os.path.join(out, name), level, peer_names, peers_dir,
                    seed, data_dir)
    plot_real_noise(os.path.join(out, "rni6.png"), tasks.get("denoise"), "RNI6", limit,
                    data_dir)
    plot_real_noise(os.path.join(out, "rni15.png"), tasks.get("denoise_color"), "RNI15", limit,
                    data_dir)


def plot_levels(results, out):
    """PSNR against level for every method (the paper's Fig. 1 and Table 2's last rows), the
    paper's figures dotted; and the mean peak step against σ and QF (Fig. 4)."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (task_name, entry) in zip(axes[0], results.items()):
        for method in methods.method_order(task_name, entry):
            points = [(float(level), row[method]["psnr"])
                      for level, row in entry["levels"].items() if method in row]
            color = ax.plot(*zip(*points), marker="o", label=method)[0].get_color() \
                if points else None
            paper = methods.PUBLISHED[task_name].get(method)
            if paper:
                ax.plot(list(paper), list(paper.values()), linestyle=":", marker=".",
                        color=color, label=f"{method} (paper)")
        symbol = tasks.get(task_name).level_symbol
        ax.set(xlabel=symbol, ylabel="mean PSNR (dB)",
               title=f"{entry['set']}: PSNR against {symbol}")
    evaluator.save_figure(fig, axes[0], os.path.join(out, "psnr_vs_level.png"))

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (task_name, entry) in zip(axes[0], results.items()):
        task = tasks.get(task_name)
        rows = [(float(lv), row) for lv, row in entry["levels"].items() if methods.ORACLE in row]
        if not rows:
            continue
        levels = [lv for lv, _ in rows]
        ax.plot(levels, [row[methods.ORACLE]["steps"] for _, row in rows], marker="o",
                label="mean peak step (oracle)")
        ax.plot(levels, [row[methods.LEARNED]["steps"] for _, row in rows], marker="s",
                label="mean learned step")
        ax.plot(levels, stop_rules.refined_steps(task.refined_map, tf.constant(levels)).numpy(),
                linestyle="--", label="refined training map (extrapolated)")
        ax.set(xlabel=task.level_symbol, ylabel="step", title=f"{entry['set']}: peak step")
    evaluator.save_figure(fig, axes[0], os.path.join(out, "peak_step.png"))


def _show(ax, image, **kwargs):
    """Draws a float [H,W,1] or [H,W,3] image in [0, 1]."""
    image = np.clip(image, 0, 1)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, **kwargs)
    else:
        ax.imshow(image, **kwargs)


def plot_panels(task, path, level, peer_names, peers_dir, seed, data_dir=None):
    """One image of the task's set through each peer and durr-tf, whole and as a 4× zoomed
    centre crop, PSNR in each caption."""
    file = sets.resolve(task.benchmark_set, data_dir)[0]
    clean = task.read_clean(file)
    degraded = evaluator.degrade_set(task, [clean], level, seed)[0]
    columns = [("input", degraded)]
    for name in peer_names:
        restore = methods.PEERS[name].load(peers_dir)
        columns.append((name, restore(degraded, level)))
    restored, steps = methods.load_durr(task.name)[1](degraded)
    columns.append((f"DURR ({int(steps[0])} steps)", restored))
    columns.append(("clean", clean))
    h, w = clean.shape[:2]
    size = min(h, w) // 4
    top, left = (h - size) // 2, (w - size) // 2
    fig, axes = plt.subplots(2, len(columns), figsize=(2.6 * len(columns), 4.6))
    for (name, image), (whole, zoom) in zip(columns, axes.T):
        caption = name if name == "clean" else f"{name}\n{metrics.psnr(image, clean):.2f} dB"
        _show(whole, image)
        whole.add_patch(plt.Rectangle((left, top), size, size, fill=False, color="red"))
        whole.set_title(caption, fontsize=8)
        _show(zoom, image[top:top + size, left:left + size], interpolation="nearest")
        for ax in (whole, zoom):
            ax.axis("off")
    fig.suptitle(f"{os.path.basename(file)}, {task.level_symbol}={level:g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_real_noise(path, task, image_set, limit, data_dir=None):
    """A denoiser with its learned stop on photos with real noise and no ground truth (RNI6
    for the gray model, RNI15 for the color one), the first `limit` of them (0 = all)."""
    files = sets.resolve(image_set, data_dir)
    files = files[:limit] if limit else files
    restorer = methods.load_durr(task.name)[1]
    columns = min(len(files), 8)
    rows = 2 * -(-len(files) // columns)  # an input row above each output row
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, file in enumerate(files):
        row, column = 2 * (i // columns), i % columns
        top, bottom = axes[row, column], axes[row + 1, column]
        image = task.read_clean(file)
        restored, steps = restorer(image)
        _show(top, image)
        top.set_title(os.path.basename(file), fontsize=8)
        _show(bottom, restored)
        bottom.set_title(f"DURR, {int(steps[0])} steps", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
