"""Calibrates the learned stop's margin on whole training images.

    python -m agents.calibrate --policy runs/dqn_denoise/policy [--set CBSD432 --images 48] \
        [--held_out 24]

The greedy policy stops where Q(continue) − Q(stop) turns negative. Near the peak that
difference is the PSNR the remaining steps would still gain, a few hundredths of a dB, smaller
than the Q-network's error, and the network was fitted on 48×48 patches, not on whole photos,
so on whole photos a greedy policy stops steps late or early. A margin
m(n) = offset + scale / (n + 1) (`stop_rules.StopMargin`; stop where
Q(continue) − Q(stop) < m(n)) corrects that bias. Its two numbers are the pair of least mean
PSNR loss to the best step, at levels drawn around each of the policy's training levels
(`jittered_levels`), on whole photos that no benchmark holds. The restorer's peaks fall on a
few steps at a given level, where the bias departs from the curve, so a coordinate descent
then sets one margin per step (`refine_steps`) wherever that lowers the loss by more than
STEP_MIN_GAIN, up to the first peak of the latest-peaking level (`decided_steps`); later steps
keep the curve. The photos: CBSD432, the BSDS500 images outside (C)BSD68, as the task reads them
(gray, Y or RGB), at the benchmarks' size (Train400's 180×180 crops gave a smaller bias than
481×321 photos). The color restorer was trained on CBSD432 patches and validated on LIVE1,
the other color set, so neither is unseen; CBSD432 is the larger. The margin is written beside
the policy (`stop_rules.MARGIN_FILE`), where `LearnedStopRule` reads it, and
`agents.ship_policy` copies it with the policy. The record beside it also scores the blind
`estimate` rule on the same trajectories: the comparison the learned stop has to win, made
without a test set. `--held_out` photos, which the margin is not fitted on, score both again:
the figure that chooses between policies, since the margin's gap on its own photos is biased
low (on 48 photos, 0.048 dB for the gray policy, 0.053 on 24 others).

The restorer's trajectories take nearly all of a calibration's time (about 40 minutes on one
CPU thread for 72 gray photos); the margin search takes seconds. `--trajectories FILE` keeps
them (advantages, PSNR and the `estimate` rule's steps, fitted and held out) in an .npz file
and reads them back on a later call with the same policy, photos, levels and seed, so that a
different fit can be tried, or the record rewritten, without running the restorer again.
"""

import dataclasses
import itertools
import json
import os

import agents  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads Keras)
import numpy as np
import tensorflow as tf
from absl import app, flags

from agents import dqn
from data import sets
from durr_tf.evaluation import metrics
from durr_tf.core import restorer_io, stop_rules, tasks, unroll
from durr_tf.core.progress import Progress

# The margins searched, in dB (the unit of the Q-values); ties go to the margin nearest the
# greedy policy (smallest |offset| + |scale|). A positive margin stops a policy earlier, a
# negative one later: the policy's advantage is biased up or down depending on the task and the
# step (the gray denoising policy stopped late, the deblocking one 3 steps early on training
# photos). The levels fitted are drawn around the policy's training levels, which span the
# benchmarks' levels.
OFFSETS = np.round(np.arange(-1.0, 1.5001, 0.01), 3)
SCALES = np.round(np.arange(-5.0, 10.0001, 0.05), 3)
CANDIDATES = [stop_rules.StopMargin(float(o), float(s)) for o, s in itertools.product(OFFSETS,
                                                                                    SCALES)]
TRAJECTORY_ARRAYS = ("advantages", "psnr", "blind_steps")  # what `trajectories` returns
STEP_MARGINS = np.round(np.arange(-1.0, 3.0001, 0.01), 3)  # the per-step margins searched, dB
# The least gain (dB of the mean gap) for which a per-step margin leaves the curve. Smaller
# gains are mostly the fitted photos' own: with every strict gain taken, the shipped gray
# policy's margins did worse on photos left out than the curve alone, in each of three folds
# of its 72 calibration photos (docs/learned_stop_history.md).
STEP_MIN_GAIN = 0.002


def stop_steps(advantages, margin):
    """The step each trajectory stops at: the first n with advantage < margin.at(n), else the
    last. `advantages` is [K, T+1], Q(continue) − Q(stop) read at X_0 … X_T."""
    below = advantages < margin.at(np.arange(advantages.shape[1]))
    return np.where(below.any(axis=1), np.argmax(below, axis=1), advantages.shape[1] - 1)


def steps_gap(steps, psnr):
    """Mean PSNR lost to the best step when stopping at `steps` [K]; `psnr` is [K, T+1]."""
    return float(np.mean(psnr.max(axis=1) - psnr[np.arange(len(psnr)), steps]))


def psnr_gap(advantages, psnr, margin):
    """Mean PSNR lost to the best step when stopping with `margin`."""
    return steps_gap(stop_steps(advantages, margin), psnr)


def choose_margin(advantages, psnr, candidates=CANDIDATES):
    """The candidate `StopMargin` of smallest `psnr_gap` (ties: the smallest |offset| +
    |scale|, the one nearest the greedy policy), and the gap of every candidate."""
    gaps = np.array([psnr_gap(advantages, psnr, m) for m in candidates])
    ties = np.flatnonzero(gaps <= gaps.min() + 1e-9)
    size = [abs(candidates[i].offset) + abs(candidates[i].scale) for i in ties]
    return candidates[ties[int(np.argmin(size))]], gaps


def refine_steps(advantages, psnr, margin, steps, sweeps=3, min_gain=STEP_MIN_GAIN):
    """`margin` with one margin for each step 0…steps−1, each taken in turn (`sweeps` rounds)
    from STEP_MARGINS where it lowers `psnr_gap` most. A value changes only where that lowers
    the gap by more than `min_gain`, so a step at which no trajectory's decision changes (or
    changes for less) keeps the curve's value."""
    values = np.asarray(margin.at(np.arange(steps)), float)

    def gap(candidate):
        return psnr_gap(advantages, psnr, dataclasses.replace(margin, steps=tuple(candidate)))

    best = gap(values)
    for _ in range(sweeps):
        before = best
        for n in range(steps):
            for value in STEP_MARGINS:
                trial = values.copy()
                trial[n] = value
                trial_gap = gap(trial)
                if trial_gap < best - min_gain:
                    best, values = trial_gap, trial
        if best == before:
            break
    return dataclasses.replace(margin, steps=tuple(values))


def decided_steps(psnr, level_count):
    """The steps before the first peak of the level that peaks latest: the calibration shows
    where stopping beats continuing only there. From that step on, trajectories of a level past
    the training range still have to continue (at σ = 65 and 75 the peak is 3–8 steps later),
    so a per-step margin fitted there (one of 0.93 at step 12 in a color trial) stops them early.
    Rows of `psnr` are image-major, level-minor."""
    peaks = np.argmax(psnr, axis=1)
    return max(int(peaks[i::level_count].min()) for i in range(level_count))


def jittered_levels(levels, rng, integer):
    """`levels` (evenly spaced) each moved by a uniform draw within half their spacing, so that
    the calibration's trajectories peak at every step, not only at the few steps where the
    peaks of the levels themselves fall. On a grid of levels the per-step search learned never
    to stop at the steps between those peaks (a margin of −1 dB at steps 7, 10 and 15 for
    gray denoising), so photos due to stop there went a step further. Rounded for JPEG
    qualities."""
    levels = np.asarray(levels, float)
    half = (levels[1] - levels[0]) / 2 if len(levels) > 1 else 0.0
    moved = np.clip(levels + rng.uniform(-half, half, len(levels)), levels[0], levels[-1])
    return np.round(moved) if integer else moved


def trajectories(cell, rule, task, cleans, levels, max_steps, seed):
    """[K, T+1] advantages and PSNR of every image at each of `levels` (`jittered_levels`,
    drawn anew per image; the levels of an image in a batch), and [K] the steps the blind
    `estimate` rule takes, for comparison."""
    stepper = unroll.Stepper(cell)
    blind_rule = stop_rules.parse_stop_rule("estimate", task.name)
    rng = np.random.default_rng(seed)
    advantages, psnr, blind_steps = [], [], []
    progress = Progress(len(cleans), label="calibrate")
    for i, clean in enumerate(cleans):
        image_levels = jittered_levels(levels, rng, task.level_name == "qf")
        degraded = tf.constant(np.stack([task.degrade(clean, level, (seed, 1000 * i + j))
                                         for j, level in enumerate(image_levels)]))
        state = rule.initial_state(degraded)
        blind_steps.append(np.minimum(blind_rule.initial_state(degraded).numpy(), max_steps))
        image_advantages, image_psnr = [], []
        for x in stepper.trajectory(degraded, max_steps):
            advantage, state = rule.advantage(x, state)
            image_advantages.append(advantage.numpy())
            image_psnr.append([metrics.psnr(iterate, clean) for iterate in x.numpy()])
        advantages.append(np.stack(image_advantages, axis=1))
        psnr.append(np.stack(image_psnr, axis=1))
        progress.update(i + 1)
    return np.concatenate(advantages), np.concatenate(psnr), np.concatenate(blind_steps)


def summary(steps, psnr):
    """PSNR loss to the best step and chosen − best step of `steps` [K], over all rows."""
    best = np.argmax(psnr, axis=1)
    return {"psnr_gap_db": round(steps_gap(steps, psnr), 4),
            "step_error_mean": round(float(np.mean(steps - best)), 3),
            "step_error_std": round(float(np.std(steps - best)), 3)}


def summaries(steps, psnr, levels):
    """`summary` over all rows and per nominal level (rows are image-major, level-minor)."""
    per_level = {f"{level:g}": summary(steps[i::len(levels)], psnr[i::len(levels)])
                 for i, level in enumerate(levels)}
    return {"all": summary(steps, psnr), "levels": per_level}


def spread(files, count):
    """`count` of `files` spread evenly over them."""
    return files[::max(1, len(files) // count)][:count] if count else []


def policy_digest(policy_dir):
    """sha256 of the policy's graph and weights: what its advantages depend on (not its
    margin or cards)."""
    def is_network(path):
        return (os.path.basename(path) == "saved_model.pb"
                or os.path.basename(os.path.dirname(path)) == "variables")

    return restorer_io.files_digest(restorer_io.folder_files(policy_dir, is_network), policy_dir)


def cached_trajectories(path, key, compute):
    """`compute()`'s {name: array} kept in the .npz file `path` under `key` (a JSON-able dict of
    what they depend on): read back when the file holds the same key, computed and written
    (staged, then renamed in) when there is no file. A file made for another key raises rather
    than being overwritten or silently reused."""
    if not path:
        return compute()
    if os.path.exists(path):
        with np.load(path) as stored:
            stored_key = json.loads(str(stored["key"]))
            if stored_key != key:
                differs = sorted(name for name in set(key) | set(stored_key)
                                 if key.get(name) != stored_key.get(name))
                raise ValueError(f"{path} holds trajectories of another calibration (differs in "
                                 f"{', '.join(differs)}); give another --trajectories file")
            return {name: stored[name] for name in stored.files if name != "key"}
    arrays = compute()
    staging = path + ".partial.npz"
    np.savez_compressed(staging, key=json.dumps(key), **arrays)
    os.replace(staging, path)
    return arrays


def calibrate(policy_dir, task_name, restorer="", image_set="CBSD432", data_dir="", images=48,
              level_count=7, level_range=(), max_steps=24, seed=1, held_out=0,
              trajectories_file=""):
    """Chooses the margin of the policy in `policy_dir` and writes it there; returns the record.
    With `held_out` photos, spread over those the margin is not fitted on, the record also
    scores the calibrated policy and the `estimate` rule on them: a gap to the best step that
    the fit has not seen, for choosing between policies without a test set. With
    `trajectories_file`, the trajectories are kept there and read back (`cached_trajectories`)."""
    task = tasks.get(task_name)
    files = sets.resolve(image_set, data_dir or None)
    fitted = spread(files, images)
    unfitted = spread([path for path in files if path not in fitted], held_out)
    levels = dqn.training_levels(task, level_count, tuple(level_range))

    def compute():
        cell, _ = restorer_io.load_restorer(restorer or task.name)
        rule = stop_rules.LearnedStopRule(policy_dir, margin=stop_rules.StopMargin())
        arrays = {}
        for prefix, paths, trajectory_seed in (("fitted", fitted, seed),
                                               ("held_out", unfitted, seed + 1)):
            if paths:
                cleans = [task.read_clean(path) for path in paths]
                found = trajectories(cell, rule, task, cleans, levels, max_steps,
                                     trajectory_seed)
                arrays.update({f"{prefix}_{name}": array
                               for name, array in zip(TRAJECTORY_ARRAYS, found)})
        return arrays

    key = {"task": task.name, "restorer": restorer or task.name,
           "policy": policy_digest(policy_dir), "levels": [float(v) for v in levels],
           "max_steps": max_steps, "seed": seed,
           "fitted": [os.path.basename(path) for path in fitted],
           "held_out": [os.path.basename(path) for path in unfitted]}
    arrays = cached_trajectories(trajectories_file, key, compute)
    advantages, psnr, blind_steps = (arrays[f"fitted_{name}"] for name in TRAJECTORY_ARRAYS)
    curve, _ = choose_margin(advantages, psnr)
    margin = refine_steps(advantages, psnr, curve, decided_steps(psnr, len(levels)))
    record = {"margin": dataclasses.asdict(margin), "set": image_set, "images": len(fitted),
              "levels": list(levels), "max_steps": max_steps, "seed": seed,
              "step_min_gain_db": STEP_MIN_GAIN}
    for name, stop_margin in (("greedy", stop_rules.StopMargin()), ("curve", curve),
                              ("calibrated", margin)):
        record[name] = summaries(stop_steps(advantages, stop_margin), psnr, levels)
    record["estimate"] = summaries(blind_steps, psnr, levels)
    if unfitted:
        advantages, psnr, blind_steps = (arrays[f"held_out_{name}"]
                                         for name in TRAJECTORY_ARRAYS)
        record["held_out"] = {"images": len(unfitted),
                              "calibrated": summaries(stop_steps(advantages, margin), psnr,
                                                      levels),
                              "estimate": summaries(blind_steps, psnr, levels)}
    with open(os.path.join(policy_dir, stop_rules.MARGIN_FILE), "w") as handle:
        json.dump(record, handle, indent=2)
    return record


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("policy", "runs/dqn_denoise/policy", "Exported policy folder.", **into)
    flags.DEFINE_string("set", "CBSD432", "Registered set name or folder of whole photos.", **into)
    flags.DEFINE_string("data_dir", "", "Folder holding the datasets (else DURR_DATA_DIR).", **into)
    flags.DEFINE_integer("images", 48, "Photos to calibrate on, spread over the set.", **into)
    flags.DEFINE_integer("held_out", 0, "Further photos of the set, not calibrated on, to "
                         "score the calibrated policy and the estimate rule on.", **into)
    flags.DEFINE_string("trajectories", "", "An .npz file that keeps the restorer's "
                        "trajectories: written on the first call, read back on a later one "
                        "with the same policy, photos, levels and seed.", **into)


def main(argv):
    del argv
    with open(os.path.join(FLAGS.policy, os.pardir, "config.json")) as handle:
        config = json.load(handle)
    record = calibrate(FLAGS.policy, config["task"], config["restorer"], FLAGS.set,
                       FLAGS.data_dir, FLAGS.images, config["level_count"],
                       config.get("level_range", ()), config["max_steps"],
                       held_out=FLAGS.held_out, trajectories_file=FLAGS.trajectories)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    define_flags()
    app.run(main)
