"""The benchmark's methods and what they gave: the peers and durr-tf's four rows, the levels of
each task, the published figures (published.json), the runners that fill the cache and the
readers that gather it into tables.

Every method restores the same inputs (`evaluator.degrade_set`), is scored by the same PSNR and
SSIM (`durr_tf.evaluation.metrics`); a timed row names the machine it was timed on, since the
cache keeps rows from different runs. The peer check holds DnCNN-B and DnCNN-3 to their own
published figures on the whole sets, since a peer that misses them makes no comparison worth
trusting.
"""

import dataclasses
import functools
import json
import os
import time
from importlib import resources
from typing import Callable

import numpy as np

from data import sets
from durr_tf.core import restorer_io, stop_rules, tasks
from durr_tf.core.progress import Progress
from durr_tf.evaluation import evaluator, metrics, peers
from durr_tf.inference.restorer import Restorer
from durr_tf.tools.benchmark import cache
from durr_tf.training import history

LEVELS = {"denoise": (15.0, 25.0, 35.0, 45.0, 50.0, 55.0, 65.0, 75.0),
          "deblock": (10.0, 20.0, 30.0, 40.0),
          "denoise_color": (15.0, 25.0, 35.0, 50.0, 75.0)}  # the FFDNet paper's color levels
TIMED_IMAGES = 3  # images per level on which durr-tf's learned stop is timed
LEARNED, ESTIMATE, ORACLE, BEST_FIXED = ("DURR learned stop", "DURR estimate stop",
                                         "DURR oracle stop", "DURR best fixed N")
DURR_ROWS = (LEARNED, ESTIMATE, ORACLE, BEST_FIXED)
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
# Peers shown with their published figures only: the peers folder holds no CDnCNN-B weights.
PUBLISHED_ONLY = ("CDnCNN-B",)
DURR = "DURR"  # the method group that yields the four durr-tf rows
METHODS = (*PEERS, DURR)
COLUMNS = (*PEERS, *PUBLISHED_ONLY, *DURR_ROWS)  # the order of a table's methods


def _read_published():
    """{task: {method: {level: PSNR}}} from published.json, which names each figure's paper and
    table; a method's figures may come from several tables."""
    data = json.loads(resources.files(__package__).joinpath("published.json").read_text())
    merged = {}
    for table in data["tables"]:
        for method, figures in table["psnr"].items():
            merged.setdefault(table["task"], {}).setdefault(method, {}).update(
                (int(level), psnr) for level, psnr in figures.items())
    return {task: {method: dict(sorted(by_method[method].items()))
                   for method in COLUMNS if method in by_method}
            for task, by_method in merged.items()}


PUBLISHED = _read_published()


def method_order(task_name, entry):
    """The methods of a task's table: those run, and the peers known only by their figures."""
    present = {m for row in entry["levels"].values() for m in row}
    present.update(m for m in PUBLISHED_ONLY if m in PUBLISHED[task_name])
    return [m for m in COLUMNS if m in present]


def model_digest(task_name, method):
    """What durr-tf's rows depend on besides the images and the seed: the shipped weights,
    policy and stop margin, so that a reshipped model never reuses its predecessor's rows.
    None for the peers, whose weights are fixed."""
    return restorer_io.pretrained_digest(task_name) if method == DURR else None


def _set_files(task, limit, data_dir=None):
    files = sets.resolve(task.benchmark_set, data_dir)
    return files[:limit] if limit else files


def run_peer(peer, restore, cleans, degraded, level, progress):
    """One peer's row at one level: mean PSNR, SSIM and seconds per image."""
    psnr, ssim, seconds = [], [], []
    for i, (clean, noisy) in enumerate(zip(cleans, degraded)):
        start = time.perf_counter()
        restored = restore(noisy, level)
        seconds.append(time.perf_counter() - start)
        psnr.append(metrics.psnr(restored, clean))
        ssim.append(metrics.ssim(restored, clean))
        progress.update(i + 1)
    return {peer.name: {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
                        "seconds": float(np.mean(seconds)), "steps": None,
                        "timed_on": history.machine()}}


DURR_STOPS = (evaluator.ORACLE, "learned", "estimate")  # the stops of the durr-tf rows


@functools.cache
def load_durr(task_name):
    """The shipped restorer of the task and a `Restorer` with its learned stop (the `restore`
    command's path), loaded once per process: the rows and every figure use them."""
    cell = restorer_io.load_restorer(task_name)[0]
    return cell, Restorer(cell, stop_rules.parse_stop_rule("learned", task_name),
                          color_mode=tasks.get(task_name).color_mode)


def run_durr(task, files, degraded, level, seed, cell, restorer, trajectories):
    """The four durr-tf rows at one level, from one recorded trajectory per image (`evaluate`
    with `trajectories`, a `TrajectoryEvaluator` of DURR_STOPS): the learned stop, the blind
    estimate stop, the oracle and the best fixed N. The learned stop is timed through `restorer`
    (see `load_durr`) on the first TIMED_IMAGES images, which spares a second pass over the
    set."""
    seconds = []
    for noisy in degraded[:TIMED_IMAGES]:
        start = time.perf_counter()
        restorer(noisy)
        seconds.append(time.perf_counter() - start)
    trajectory = evaluator.evaluate(cell, task, files, [level], DURR_STOPS, seed=seed,
                                    evaluator=trajectories)
    trajectory = trajectory["levels"][f"{level:g}"]
    rules, fixed = trajectory["rules"], trajectory["best_fixed"]
    row = {name: {"psnr": rules[rule]["psnr"], "ssim": rules[rule]["ssim"], "seconds": None,
                  "steps": rules[rule]["step_mean"]}
           for name, rule in ((LEARNED, "learned"), (ESTIMATE, "estimate"),
                              (ORACLE, evaluator.ORACLE))}
    row[LEARNED].update(seconds=float(np.mean(seconds)), timed_on=history.machine())
    row[BEST_FIXED] = {"psnr": fixed["psnr"], "ssim": None, "seconds": None,
                       "steps": float(fixed["steps"])}
    return row


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
                    cell, restorer = load_durr(task.name)
                    restorer(degraded[0])  # warm-up: graph building is not timed
                    durr = cell, restorer, evaluator.TrajectoryEvaluator(cell, task, DURR_STOPS)
                return run_durr(task, files, degraded, level, seed, *durr)
            if restore is None:
                restore = PEERS[method].load(peers_dir)
                restore(degraded[0], level)  # warm-up: first-call costs are not timed
            progress = Progress(len(files), label=f"{method} {task.level_symbol}={level:g}")
            return run_peer(PEERS[method], restore, cleans, degraded, level, progress)

        cache.cached_results(out, task.name, method, files, level, seed, compute,
                             model_digest(task.name, method))


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
                table[f"{level:g}"].update(cache.cached(out, task_name, method, files, level,
                                                        seed, model_digest(task_name, method)))
        results[task_name] = {"set": task.benchmark_set, "images": len(files), "levels": table}
    return results


def peer_check(out, seed, data_dir=None):
    """The peers' PSNR on their whole test sets at the levels of their published figures, as
    far as they were run, checked against those figures."""
    measured = {}
    for name, (task_name, levels) in PEER_CHECK.items():
        files = _set_files(tasks.get(task_name), 0, data_dir)
        for level in levels:
            ours = cache.cached(out, task_name, name, files, level, seed).get(name)
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
    """Learned weights per method: the peers', and per task durr-tf's restorer and policy."""
    durr = {task: restorer_io.read_card(restorer_io.pretrained_prefix(task))["parameters"]
            for task in LEVELS}
    policy = {task: stop_rules.parse_stop_rule("learned", task).parameters for task in LEVELS}
    counts = {name: peer.parameters for name, peer in PEERS.items()}
    counts.update({f"DURR {task} (restorer + policy)": durr[task] + policy[task]
                   for task in LEVELS})
    return counts
