"""durr-tf beside its peers on the same degraded images, in one run on one machine.

    python -m durr_tf.tools.benchmark --out docs/results/benchmark [--limit 17 | --quick] \
        [--readme docs/results.md]

Every method restores the same inputs (Gaussian noise from fixed seeds on BSD68 and on CBSD68's
RGB, PIL JPEG of LIVE1's Y channel; `evaluator.degrade_set`), scored by the same PSNR and SSIM
(`durr_tf.evaluation.metrics`) and timed in the same process: BM3D and CBM3D told the true σ, DnCNN-B
and DnCNN-3 rebuilt from their released weights (`durr_tf.evaluation.peers`, read from --peers_dir), and
durr-tf with its learned stop, its blind σ/QF-estimate stop, the oracle stop and the best fixed
N. Tables print the paper's published figures beside ours. The table may use the first --limit
images of each set; the peer check, DnCNN-B and DnCNN-3 at the levels of their own published
figures, always uses the whole sets, since a peer that misses its figures makes no comparison
worth trusting.

Each (task, method, level) result is cached in OUT/cache as soon as it is done, so a killed
run resumes, and methods may run in separate processes into the same OUT (BM3D is
single-threaded: `--methods BM3D,CBM3D --noreport` beside the rest). The report stage builds
the Markdown and JSON tables, the figures (PSNR against level, peak step, image panels with zoomed
crops, real noisy photos of RNI6 and RNI15) and, with --readme, the results section of
docs/results.md.
"""

import dataclasses
import json
import os
import platform
import sys
import time
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from data import sets  # noqa: E402
from durr_tf.core import restorer_io, stop_rules  # noqa: E402
from durr_tf.evaluation import evaluator, metrics, peers  # noqa: E402
from durr_tf.core import tasks  # noqa: E402
from durr_tf.core.progress import Progress  # noqa: E402
from durr_tf.inference.restorer import Restorer  # noqa: E402

LEVELS = {"denoise": (15.0, 25.0, 35.0, 45.0, 50.0, 55.0, 65.0, 75.0),
          "deblock": (10.0, 20.0, 30.0, 40.0),
          "denoise_color": (15.0, 25.0, 35.0, 50.0, 75.0)}  # the FFDNet paper's color levels
QUICK_IMAGES = 2
TIMED_IMAGES = 3  # images per level on which durr-tf's learned stop is timed
LEARNED, ESTIMATE, ORACLE, BEST_FIXED = ("DURR learned stop", "DURR estimate stop",
                                         "DURR oracle stop", "DURR best fixed N")
ORACLE_RULE = evaluator.ORACLE
DURR_ROWS = (LEARNED, ESTIMATE, ORACLE, BEST_FIXED)
README_START, README_END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"

# Published PSNR (dB). BSD68: the DURR paper's Table 2 (σ = 25…75); σ = 15 and 50 from the
# DnCNN paper (Zhang et al. 2017, Table 2). LIVE1 Y: the DURR paper's Table 3, except DnCNN-3,
# for which the DnCNN paper's figures are given (the DURR paper prints 29.40 at QF 10).
# CBSD68 (RGB): CBM3D and CDnCNN-B as published in the FFDNet paper (Zhang et al. 2018); no
# CDnCNN-B weights are in the peers folder, so CDnCNN-B has published figures only.
PUBLISHED = {
    "denoise": {
        "BM3D": {15: 31.07, 25: 28.55, 35: 27.07, 45: 25.99, 50: 25.62, 55: 25.26, 65: 24.69,
                 75: 22.63},
        "DnCNN-B": {15: 31.61, 25: 29.16, 35: 27.66, 45: 26.62, 50: 26.23, 55: 25.80,
                    65: 23.40, 75: 18.73},
        LEARNED: {25: 29.16, 35: 27.72, 45: 26.71, 55: 25.91, 65: 25.26, 75: 24.71},
    },
    "deblock": {
        "JPEG": {10: 27.77, 20: 30.07, 30: 31.41, 40: 32.45},
        "DnCNN-3": {10: 29.19, 20: 31.59, 30: 32.98, 40: 33.96},
        LEARNED: {10: 29.23, 20: 31.68, 30: 33.05, 40: 34.01},
    },
    "denoise_color": {
        "CBM3D": {25: 30.71, 50: 27.38},
        "CDnCNN-B": {25: 31.23, 50: 27.92},
    },
}
# The peers' own published figures, which their rebuilt weights must meet before any comparison.
PEER_CHECK = {"DnCNN-B": ("denoise", (15, 25, 50)), "DnCNN-3": ("deblock", (10, 20, 30, 40))}
PEER_CHECK_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer method: `load(peers_dir)` returns restore(degraded [H,W,C], level) -> restored."""
    name: str
    task: str
    parameters: int  # learned weights; 0 for methods without any
    load: Callable


def _import_bm3d():
    try:
        import bm3d
    except ImportError:
        raise ImportError("BM3D needs the bm3d package: pip install bm3d") from None
    return bm3d


def _load_bm3d(peers_dir):
    del peers_dir
    bm3d = _import_bm3d()
    return lambda degraded, sigma: bm3d.bm3d(degraded[..., 0], sigma / 255.0)[..., None]


def _load_cbm3d(peers_dir):
    """CBM3D: BM3D in the opponent color space, told the σ of the RGB noise."""
    del peers_dir
    bm3d = _import_bm3d()
    return lambda degraded, sigma: bm3d.bm3d_rgb(degraded, sigma / 255.0)


def _dncnn_loader(weights_file):
    def load(peers_dir):
        path = os.path.join(peers_dir, weights_file)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no peer weights at {path}: set --peers_dir or "
                                    "DURR_PEERS_DIR to a copy of ../shared/peers")
        network = peers.dncnn(path)
        return lambda degraded, level: network(degraded[None]).numpy()[0]
    return load


PEERS = {peer.name: peer for peer in [
    Peer("JPEG", "deblock", 0, lambda peers_dir: lambda degraded, level: degraded),
    Peer("BM3D", "denoise", 0, _load_bm3d),
    Peer("DnCNN-B", "denoise", 665_921, _dncnn_loader("dncnn_b/GD_Gray_Blind.mat")),
    Peer("DnCNN-3", "deblock", 665_921, _dncnn_loader("dncnn3/DnCNN3.mat")),
    Peer("CBM3D", "denoise_color", 0, _load_cbm3d),
]}
PUBLISHED_ONLY = ("CDnCNN-B",)  # peers shown with their published figures, not run here
DURR = "DURR"  # the method group that yields the four durr-tf rows
METHODS = (*PEERS, DURR)


def run_peer(peer, restore, cleans, degraded, level, progress):
    psnr, ssim, seconds = [], [], []
    for i, (clean, noisy) in enumerate(zip(cleans, degraded)):
        start = time.perf_counter()
        restored = restore(noisy, level)
        seconds.append(time.perf_counter() - start)
        psnr.append(metrics.psnr(restored, clean))
        ssim.append(metrics.ssim(restored, clean))
        progress.update(i + 1)
    return {peer.name: {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
                        "seconds": float(np.mean(seconds)), "steps": None}}


def load_durr(task):
    """The shipped restorer of the task and a `Restorer` with its learned stop (the `restore`
    command's path)."""
    cell = restorer_io.load_restorer(task.name)[0]
    return cell, Restorer(cell, stop_rules.parse_stop_rule("learned", task.name),
                          color_mode=task.color_mode)


def run_durr(task, files, degraded, level, seed, cell, restorer):
    """The four durr-tf rows at one level, from one recorded trajectory per image (`evaluate`):
    the learned stop, the blind estimate stop, the oracle and the best fixed N. The learned stop
    is timed through `restorer` (see `load_durr`) on the first TIMED_IMAGES images, which
    spares a second pass over the set."""
    seconds = []
    for noisy in degraded[:TIMED_IMAGES]:
        start = time.perf_counter()
        restorer(noisy)
        seconds.append(time.perf_counter() - start)
    stops = [ORACLE_RULE, "learned", "estimate"]
    trajectory = evaluator.evaluate(cell, task, files, [level], stops, seed=seed)
    trajectory = trajectory["levels"][f"{level:g}"]
    rules, fixed = trajectory["rules"], trajectory["best_fixed"]
    row = {name: {"psnr": rules[rule]["psnr"], "ssim": rules[rule]["ssim"], "seconds": None,
                  "steps": rules[rule]["step_mean"]}
           for name, rule in ((LEARNED, "learned"), (ESTIMATE, "estimate"), (ORACLE, ORACLE_RULE))}
    row[LEARNED]["seconds"] = float(np.mean(seconds))
    row[BEST_FIXED] = {"psnr": fixed["psnr"], "ssim": None, "seconds": None,
                       "steps": float(fixed["steps"])}
    return row


def cached_results(out, task, method, files, level, seed, compute):
    """The cached rows of (task, method, level) for exactly these images and seed, or
    `compute()`'s, written to the cache by rename so a kill never leaves half a file."""
    rows = _cached(out, task, method, files, level, seed)
    if not rows:
        rows = compute()
        path = _cache_path(out, task, method, level, len(files))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as handle:
            json.dump({"key": _cache_key(task, method, files, seed), "methods": rows}, handle,
                      indent=1)
        os.replace(path + ".tmp", path)
    return rows


def _cache_path(out, task_name, method, level, images):
    return os.path.join(out, "cache", f"{task_name}-{method}-{level:g}-{images}.json")


def _cache_key(task_name, method, files, seed):
    """What a cached result depends on: the images and the seed, and for durr-tf the shipped
    weights, policy and stop margin (a reshipped model must not reuse its predecessor's rows;
    the peers' weights are fixed)."""
    key = {"images": [os.path.basename(f) for f in files], "seed": seed}
    if method == DURR:
        key["model"] = restorer_io.pretrained_digest(task_name)
    return key


def _cached(out, task_name, method, files, level, seed):
    """The cached rows of (task, method, level) for exactly these files and seed, or {}."""
    path = _cache_path(out, task_name, method, level, len(files))
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        entry = json.load(handle)
    return entry["methods"] if entry["key"] == _cache_key(task_name, method, files, seed) else {}


def _set_files(task, limit, data_dir):
    files = sets.resolve(task.benchmark_set, data_dir)
    return files[:limit] if limit else files


def run_method(out, task, method, files, levels, seed, peers_dir):
    """Computes (or reads from the cache) one method at the given levels on these files."""
    cleans = [task.read_clean(path) for path in files]
    restore = durr = None  # loaded once, on the first level that is not cached
    for level in levels:
        degraded = evaluator.degrade_set(task, cleans, level, seed)

        def compute():
            nonlocal restore, durr
            if method == DURR:
                if durr is None:
                    durr = load_durr(task)
                    durr[1](degraded[0])  # warm-up: graph building is not timed
                return run_durr(task, files, degraded, level, seed, *durr)
            if restore is None:
                restore = PEERS[method].load(peers_dir)
                restore(degraded[0], level)  # warm-up: first-call costs are not timed
            progress = Progress(len(files), label=f"{method} {task.level_symbol}={level:g}")
            return run_peer(PEERS[method], restore, cleans, degraded, level, progress)

        cached_results(out, task.name, method, files, level, seed, compute)


def run_methods(out, methods, limit, seed, peers_dir, data_dir=None):
    """Every requested method at every level of its task, on the first `limit` images."""
    for task_name, levels in LEVELS.items():
        task = tasks.get(task_name)
        for method in methods:
            if method == DURR or PEERS[method].task == task_name:
                run_method(out, task, method, _set_files(task, limit, data_dir), levels, seed,
                           peers_dir)


def run_peer_check(out, methods, seed, peers_dir, data_dir=None):
    """The peers among `methods` at the levels of their own published figures, on their whole
    test sets."""
    for name, (task_name, levels) in PEER_CHECK.items():
        if name not in methods:
            continue
        task = tasks.get(task_name)
        run_method(out, task, name, _set_files(task, 0, data_dir), [float(v) for v in levels],
                   seed, peers_dir)


def collect(out, limit, seed, data_dir=None):
    """{task: {"set", "images", "levels": {level: {method: row}}}} from the cache."""
    results = {}
    for task_name, levels in LEVELS.items():
        task = tasks.get(task_name)
        files = _set_files(task, limit, data_dir)
        table = {}
        for level in levels:
            table[f"{level:g}"] = {}
            for method in METHODS:
                table[f"{level:g}"].update(_cached(out, task_name, method, files, level, seed))
        results[task_name] = {"set": task.benchmark_set, "images": len(files), "levels": table}
    return results


def peer_check(out, seed, data_dir=None):
    """The peers' PSNR on their whole test sets at the levels of their published figures, as
    far as they were run, checked against those figures."""
    measured = {}
    for name, (task_name, levels) in PEER_CHECK.items():
        files = _set_files(tasks.get(task_name), 0, data_dir)
        for level in levels:
            ours = _cached(out, task_name, name, files, level, seed).get(name)
            if ours is not None:
                measured[name, level] = (ours["psnr"], len(files))
    return check_rows(measured)


def check_rows(measured):
    """Rows (method, level, images, ours, published, met) from {(method, level): (PSNR, images)}."""
    rows = []
    for (name, level), (psnr, images) in measured.items():
        published = PUBLISHED[PEER_CHECK[name][0]][name][level]
        rows.append({"method": name, "level": level, "images": images, "ours": psnr,
                     "published": published,
                     "met": abs(psnr - published) <= PEER_CHECK_TOLERANCE})
    return rows


def parameters():
    durr = {task: restorer_io.read_card(restorer_io.pretrained_prefix(task))["parameters"]
            for task in LEVELS}
    policy = {task: stop_rules.LearnedStopRule(restorer_io.pretrained_policy(task)).parameters
              for task in LEVELS}
    counts = {name: peer.parameters for name, peer in PEERS.items()}
    counts.update({f"DURR {task} (restorer + policy)": durr[task] + policy[task]
                   for task in LEVELS})
    return counts


def markdown(results, checks, counts, figures_dir):
    """The results section: quality tables, the peer check, parameters and speed, figures."""
    parts = []
    for task_name, entry in results.items():
        symbol = tasks.get(task_name).level_symbol
        methods = _method_order(task_name, entry)
        parts.append(f"**{entry['set']} ({entry['images']} images)**: PSNR (dB) / SSIM, "
                     "published PSNR on the whole set in brackets.\n")
        parts.append(f"| {symbol} | " + " | ".join(methods) + " |")
        parts.append("|---|" + "---|" * len(methods))
        for level, row in entry["levels"].items():
            cells = []
            for method in methods:
                value = row.get(method)
                text = "–" if value is None else f"{value['psnr']:.2f}"
                if value is not None and value["ssim"] is not None:
                    text += f" / {value['ssim']:.4f}"
                paper = PUBLISHED[task_name].get(method, {}).get(int(float(level)))
                cells.append(text + (f" ({paper:.2f})" if paper else ""))
            parts.append(f"| {level} | " + " | ".join(cells) + " |")
        parts.append("")
    if checks:
        parts.append("**Peer check**: the rebuilt peers on their whole test sets against their "
                     f"own published PSNR (must agree within {PEER_CHECK_TOLERANCE} dB).\n")
        parts.append("| method | level | images | ours | published | within tolerance |")
        parts.append("|---|---|---|---|---|---|")
        for row in checks:
            parts.append(f"| {row['method']} | {row['level']} | {row['images']} | "
                         f"{row['ours']:.2f} | {row['published']:.2f} | "
                         f"{'yes' if row['met'] else 'NO'} |")
        parts.append("")
    parts.append("**Size and speed** (seconds per image, mean over levels, this machine).\n")
    parts.append("| method | parameters | s/image | mean steps |")
    parts.append("|---|---|---|---|")
    for task_name, entry in results.items():
        for method in _method_order(task_name, entry):
            values = [row[method] for row in entry["levels"].values() if method in row]
            seconds = [v["seconds"] for v in values if v["seconds"] is not None]
            steps = [v["steps"] for v in values if v["steps"] is not None]
            if not seconds:
                continue
            size = counts.get(method, counts.get(f"DURR {task_name} (restorer + policy)"))
            parts.append(f"| {method} ({entry['set']}) | {f'{size:,}' if size else '–'} | "
                         f"{np.mean(seconds):.2f} | "
                         + (f"{np.mean(steps):.1f} |" if steps else "– |"))
    parts.append("")
    for name, caption in FIGURES:
        parts.append(f"![{caption}]({figures_dir}/{name})\n")
    return "\n".join(parts) + "\n"


def _method_order(task_name, entry):
    """The methods of a task's table: those run, and the peers known only by their figures."""
    present = {m for row in entry["levels"].values() for m in row}
    present.update(m for m in PUBLISHED_ONLY if m in PUBLISHED[task_name])
    return [m for m in (*PEERS, *PUBLISHED_ONLY, *DURR_ROWS) if m in present]


FIGURES = [("psnr_vs_level.png", "PSNR against σ and QF for every method"),
           ("peak_step.png", "Mean peak (oracle) step against σ and QF"),
           ("panels_sigma35.png", "BSD68 at σ=35"),
           ("panels_sigma65.png", "BSD68 at σ=65 (unseen in training)"),
           ("panels_qf10.png", "LIVE1 at QF=10 (unseen in training)"),
           ("panels_color_sigma50.png", "CBSD68 at σ=50, color model"),
           ("rni6.png", "Real noisy photos (RNI6) and the learned stop's output"),
           ("rni15.png", "Real noisy color photos (RNI15) and the color model's learned stop")]


def plot_levels(results, out):
    """PSNR against level for every method (the paper's Fig. 1 and Table 2's last rows), the
    paper's figures dotted; and the mean peak step against σ and QF (Fig. 4)."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (task_name, entry) in zip(axes[0], results.items()):
        for method in _method_order(task_name, entry):
            points = [(float(level), row[method]["psnr"])
                      for level, row in entry["levels"].items() if method in row]
            color = ax.plot(*zip(*points), marker="o", label=method)[0].get_color() \
                if points else None
            paper = PUBLISHED[task_name].get(method)
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
        rows = [(float(lv), row) for lv, row in entry["levels"].items() if ORACLE in row]
        if not rows:
            continue
        levels = [lv for lv, _ in rows]
        ax.plot(levels, [row[ORACLE]["steps"] for _, row in rows], marker="o",
                label="mean peak step (oracle)")
        ax.plot(levels, [row[LEARNED]["steps"] for _, row in rows], marker="s",
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


def plot_panels(task, path, level, methods, peers_dir, seed, data_dir=None):
    """One image of the task's set through each method, whole and as a 4× zoomed centre crop,
    PSNR in each caption."""
    file = sets.resolve(task.benchmark_set, data_dir)[0]
    clean = task.read_clean(file)
    degraded = evaluator.degrade_set(task, [clean], level, seed)[0]
    columns = [("input", degraded)]
    for method in methods:
        restore = PEERS[method].load(peers_dir)
        columns.append((method, restore(degraded, level)))
    restored, steps = load_durr(task)[1](degraded)
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
    restorer = load_durr(task)[1]
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


def replace_readme_section(readme, text):
    """Replaces what lies between the README's benchmark markers with `text`."""
    with open(readme) as handle:
        content = handle.read()
    if README_START not in content or README_END not in content:
        raise ValueError(f"{readme} has no {README_START} … {README_END} markers")
    head, rest = content.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    with open(readme + ".tmp", "w") as handle:
        handle.write(f"{head}{README_START}\n{text}{README_END}{tail}")
    os.replace(readme + ".tmp", readme)


def ablation_section(ablation_dir, figures_dir):
    """The Table 1 ablation's table and figure (written by durr_tf.tools.ablation), if it was run."""
    path = os.path.join(ablation_dir, "results.md")
    if not os.path.exists(path):
        return ""
    with open(path) as handle:
        table = handle.read()
    return (f"**Training policy ablation (the paper's Table 1 and Fig. 4)**: {table}\n"
            f"![Peak PSNR and peak step of the three training policies]"
            f"({figures_dir}/table1.png)\n")


def report(out, limit, seed, peers_dir, command, readme=None, data_dir=None, ablation_dir=""):
    results = collect(out, limit, seed, data_dir)
    checks = peer_check(out, seed, data_dir)
    counts = parameters()
    plot_levels(results, out)
    plot_panels(tasks.get("denoise"), os.path.join(out, "panels_sigma35.png"), 35.0,
                ["BM3D", "DnCNN-B"], peers_dir, seed, data_dir)
    plot_panels(tasks.get("denoise"), os.path.join(out, "panels_sigma65.png"), 65.0,
                ["BM3D", "DnCNN-B"], peers_dir, seed, data_dir)
    plot_panels(tasks.get("deblock"), os.path.join(out, "panels_qf10.png"), 10.0,
                ["DnCNN-3"], peers_dir, seed, data_dir)
    plot_panels(tasks.get("denoise_color"), os.path.join(out, "panels_color_sigma50.png"), 50.0,
                ["CBM3D"], peers_dir, seed, data_dir)
    plot_real_noise(os.path.join(out, "rni6.png"), tasks.get("denoise"), "RNI6", limit,
                    data_dir)
    plot_real_noise(os.path.join(out, "rni15.png"), tasks.get("denoise_color"), "RNI15", limit,
                    data_dir)
    base = os.path.dirname(os.path.abspath(readme or out))
    text = (f"Written by `{command}` from the cached result of every method (`make results` "
            f"runs them all), on {platform.machine()} with {os.cpu_count()} CPU cores.\n\n"
            + markdown(results, checks, counts, os.path.relpath(out, base)))
    if ablation_dir:
        text += ablation_section(ablation_dir, os.path.relpath(ablation_dir, base))
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump({"command": command, "seed": seed, "results": results, "peer_check": checks,
                   "parameters": counts, "published": PUBLISHED}, handle, indent=2)
    with open(os.path.join(out, "results.md"), "w") as handle:
        handle.write(markdown(results, checks, counts, "."))
    if readme:
        replace_readme_section(readme, text)
    return text


FLAGS = flags.FLAGS


def define_flags():
    """Declares the command-line flags (only when run as a program, so modules import cleanly)."""
    flags.DEFINE_string("out", "results/benchmark", "Output folder (cache, JSON, Markdown, PNG).")
    flags.DEFINE_list("methods", list(METHODS), f"Methods to run: {', '.join(METHODS)}.")
    flags.DEFINE_bool("quick", False, f"Only the first {QUICK_IMAGES} images of each set.")
    flags.DEFINE_integer("limit", 0, "Only the first N images of each set (0 = all).")
    flags.DEFINE_bool("peer_check", True, "Also run DnCNN-B and DnCNN-3 at the levels of their "
                      "published figures on the whole sets (off with --quick).")
    flags.DEFINE_bool("report", True, "Build tables and figures after running the methods.")
    flags.DEFINE_string("readme", "", "Also write the results section between the markers of "
                        "this page (docs/results.md).")
    flags.DEFINE_integer("seed", 0, "Seed of the degradations.")
    flags.DEFINE_string("peers_dir", os.environ.get("DURR_PEERS_DIR", ""),
                        "Folder of the peers' released weights (default: DURR_PEERS_DIR).")
    flags.DEFINE_string("data_dir", "", "Folder holding the datasets (else DURR_DATA_DIR, cache).")
    flags.DEFINE_string("ablation", "", "Output folder of durr_tf.tools.ablation, whose table and "
                        "figure join the README section.")


def main(argv):
    del argv
    unknown = set(FLAGS.methods) - set(METHODS)
    if unknown:
        raise app.UsageError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    limit = QUICK_IMAGES if FLAGS.quick else FLAGS.limit
    data_dir = FLAGS.data_dir or None
    run_methods(FLAGS.out, FLAGS.methods, limit, FLAGS.seed, FLAGS.peers_dir, data_dir)
    if FLAGS.peer_check and not FLAGS.quick:
        run_peer_check(FLAGS.out, FLAGS.methods, FLAGS.seed, FLAGS.peers_dir, data_dir)
    if FLAGS.report:
        command = "python -m durr_tf.tools.benchmark " + " ".join(sys.argv[1:])
        print(report(FLAGS.out, limit, FLAGS.seed, FLAGS.peers_dir, command,
                     FLAGS.readme or None, data_dir, FLAGS.ablation))
        print(f"wrote {FLAGS.out}/results.json, results.md and figures")


if __name__ == "__main__":
    define_flags()
    app.run(main)
