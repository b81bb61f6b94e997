"""Calibrates the learned stop on whole training images: a margin, and optionally a fit.

    python -m agents.calibrate --policy runs/dqn_denoise/policy [--set CBSD432 --images 48] \
        [--held_out 24] [--fit_images 96 [--step_heads 3]] [--folds 3] [--step_min_gain 0.002] \
        [--pull] [--window] [--blind_map] [--exact_levels]

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
low (the shipped gray policy: 0.033 dB on its 48 photos, 0.062 on 24 others).

`--fit_images` first fits the policy's LSTM and head further on other photos' whole trajectories
(`calibrate`); the held-out photos score that too. `--step_heads` then also fits a head per
first step on them (`fit_step_heads`, `stop_rules.StepHeads`), which reads the advantage in
place of the policy's head. `--folds 3` also scores the margin fit on every calibration photo in
turn (`cross_validation`), which ranks policies more surely than the 24 held-out photos.
`--step_min_gain 0` takes every per-step gain, as the shipped JPEG and color margins were
fitted. `--pull` leans the margin toward the blind `estimate` rule's step N̂ by a number of dB
per step fitted with it (`fit_margin`; 0 where it does not help): the policy then departs from
N̂ only where it reads the photo clearly. `--window` also holds the stop within a window
[N̂ − a, N̂ + b], a and b chosen after the margin (`choose_window`; an open side where it does
not help), so that the policy cannot stray far where it reads a photo worse than the rule does.
`--blind_map` leans or holds toward another blind rule's step instead
(`stop_rules.ReadLevelRule`): the level read as exactly as the input allows (a JPEG's quality
factor, off its quantization table), mapped to N by a map fitted on the same photos
(`fit_blind_map`; in each fold too). `--exact_levels` also calibrates and scores every photo at
the training levels themselves (`level_names`, `joined_levels`): the draws around a level rarely
fall on it, while the benchmarks' levels are those of the grid, and at σ = 15, where the peak
moves from step 2 to 3 within the draws, the color policy fitted on the draws alone stopped late
at exactly σ = 15 on its calibration photos.

The restorer's trajectories take nearly all of a calibration's time (about 40 minutes on one
CPU thread for 72 gray photos); the fits take seconds to a minute. `--trajectories FILE` keeps
them (the policy encoder's features, PSNR and the `estimate` rule's steps, fitted and held
out) in an .npz file and reads them back on a later call with the same encoder, photos, levels
and seed, so that another fit can be tried, or the record rewritten, without running the
restorer again.
"""

import dataclasses
import hashlib
import itertools
import json
import os
import shutil

import agents  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads Keras)
import numpy as np
import tensorflow as tf
from absl import app, flags

from agents import dqn, env
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
TRAJECTORY_ARRAYS = ("features", "psnr", "blind_steps")  # what `trajectories` returns
STEP_MARGINS = np.round(np.arange(-1.0, 3.0001, 0.01), 3)  # the per-step margins searched, dB
# The least gain (dB of the mean gap) for which a per-step margin leaves the curve. Smaller
# gains are mostly the fitted photos' own: with every strict gain taken, the margins of the
# gray policy `denoise_e4k_p8k` did worse on photos left out than the curve alone, in each of
# three folds of its 72 calibration photos (docs/learned_stop_history.md).
STEP_MIN_GAIN = 0.002
# The pulls toward the `estimate` rule's step searched (dB per step; ties: the smallest).
PULLS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5, 0.8, 1.5)
# The sides of a window around the `estimate` rule's step searched (steps; None: open).
WINDOW_SIDES = (0, 1, 2, 3, 4, 6, None)
FIT_ITERATIONS = 500  # batches of 16 trajectories that fit the LSTM and head on photos
STEP_HEAD_RIDGE = 0.1  # the ridge penalty of `fit_step_heads`, on [h, 1] at about 46,000 rows


def stop_steps(advantages, margin, blind_steps=None):
    """The step each trajectory stops at: the first n where `margin.stops`, else the last.
    `advantages` is [K, T+1], Q(continue) − Q(stop) read at X_0 … X_T. A margin with a pull or
    a window leans or holds that stop toward `blind_steps` [K], the `estimate` rule's steps."""
    steps = np.arange(advantages.shape[1])
    blind = None if blind_steps is None else np.asarray(blind_steps)[:, None]
    stop = margin.stops(steps, advantages, blind)
    return np.where(stop.any(axis=1), np.argmax(stop, axis=1), advantages.shape[1] - 1)


def stop_gaps(steps, psnr):
    """[K] the PSNR each trajectory loses to its best step when stopping at `steps` [K];
    `psnr` is [K, T+1]."""
    return psnr.max(axis=1) - psnr[np.arange(len(psnr)), steps]


def steps_gap(steps, psnr):
    """Mean PSNR lost to the best step when stopping at `steps` [K]; `psnr` is [K, T+1]."""
    return float(np.mean(stop_gaps(steps, psnr)))


def psnr_gap(advantages, psnr, margin, blind_steps=None):
    """Mean PSNR lost to the best step when stopping with `margin`."""
    return steps_gap(stop_steps(advantages, margin, blind_steps), psnr)


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


def choose_window(advantages, psnr, blind_steps, margin):
    """`margin` with the window around the `estimate` rule's steps `blind_steps` [K] of least
    `psnr_gap`, each side from WINDOW_SIDES (ties: the widest, so an open window where it
    does not help)."""
    ranked = sorted(itertools.product(WINDOW_SIDES, WINDOW_SIDES),
                    key=lambda sides: [np.inf if side is None else side for side in sides],
                    reverse=True)
    windows = [dataclasses.replace(margin, window_below=below, window_above=above)
               for below, above in ranked]
    gaps = [psnr_gap(advantages, psnr, window, blind_steps) for window in windows]
    return windows[int(np.argmin(gaps))]


def fit_margin(advantages, psnr, level_count, min_gain=STEP_MIN_GAIN, blind_steps=None,
               pull=False, window=False):
    """The curve of least gap (`choose_margin`) and the calibrated margin, that curve with its
    per-step values (`refine_steps`, each kept only on a gain above `min_gain`), of
    trajectories with `level_count` levels per photo. With `pull`, both lean toward the
    `estimate` rule's steps `blind_steps` by the value of PULLS whose fit has the least gap:
    a pull p lowers the advantage before step n by p · (n − N̂), and the curve and per-step
    values are fitted to that. With `window`, the calibrated margin then also holds the stop
    in a window around them (`choose_window`)."""
    fits = []
    for value in PULLS if pull else (0.0,):
        leaned = advantages
        if value:
            leaned = advantages - stop_rules.StopMargin(pull=value).leaning(
                np.arange(advantages.shape[1]), np.asarray(blind_steps)[:, None])
        curve, _ = choose_margin(leaned, psnr)
        margin = refine_steps(leaned, psnr, curve, decided_steps(psnr, level_count),
                              min_gain=min_gain)
        fits.append((psnr_gap(leaned, psnr, margin), value, curve, margin))
    _, value, curve, margin = min(fits, key=lambda fit: fit[0])  # ties: the first, smallest
    curve, margin = (dataclasses.replace(m, pull=value) for m in (curve, margin))
    if window:
        margin = choose_window(advantages, psnr, blind_steps, margin)
    return curve, margin


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


def degraded_photos(task, cleans, levels, seed, jitter=True):
    """Yields each clean image's degraded copies [L,H,W,C], one at each of `levels`
    (`jittered_levels`, drawn anew per image, or the levels themselves without `jitter`): the
    X_0 of a calibration's trajectories, the same for the same seed."""
    rng = np.random.default_rng(seed)
    for i, clean in enumerate(cleans):
        image_levels = (jittered_levels(levels, rng, task.level_name == "qf") if jitter
                        else np.asarray(levels, float))
        yield tf.constant(np.stack([task.degrade(clean, level, (seed, 1000 * i + j))
                                    for j, level in enumerate(image_levels)]))


def trajectories(cell, encoder, task, cleans, levels, max_steps, seed, jitter=True):
    """[K, T+1, F] the policy encoder's features and [K, T+1] the PSNR of the iterates of every
    image at each of its `degraded_photos` (the levels of an image in a batch), and [K] the
    steps the blind `estimate` rule takes, for comparison. The features are what the policy's
    LSTM and head read (`advantages_of`), so a refitted LSTM and head need no new
    trajectories."""
    stepper = unroll.Stepper(cell)
    encode = tf.function(encoder)
    blind_rule = stop_rules.parse_stop_rule("estimate", task.name)
    features, psnr, blind_steps = [], [], []
    progress = Progress(len(cleans), label="calibrate")
    photos = degraded_photos(task, cleans, levels, seed, jitter)
    for i, (clean, degraded) in enumerate(zip(cleans, photos)):
        blind_steps.append(np.minimum(blind_rule.initial_state(degraded).numpy(), max_steps))
        image_features, image_psnr = [], []
        for x in stepper.trajectory(degraded, max_steps):
            image_features.append(encode(x).numpy())
            image_psnr.append([metrics.psnr(iterate, clean) for iterate in x.numpy()])
        features.append(np.stack(image_features, axis=1))
        psnr.append(np.stack(image_psnr, axis=1))
        progress.update(i + 1)
    return np.concatenate(features), np.concatenate(psnr), np.concatenate(blind_steps)


def read_levels(task, cleans, levels, seed, jitter=True):
    """[K] the level `stop_rules.read_level` reads off each X_0 of `degraded_photos` (rows
    image-major, level-minor, as `trajectories` returns them): what a `blind_map` maps."""
    return np.concatenate([stop_rules.read_level(task.refined_map, degraded).numpy()
                           for degraded in degraded_photos(task, cleans, levels, seed, jitter)])


def blind_map_steps(points, levels_read, max_steps):
    """[K] the steps N̂ the (level, N) `points` give the levels read, at most `max_steps`."""
    steps = stop_rules.mapped_steps(points, tf.constant(levels_read, tf.float32)).numpy()
    return np.minimum(steps, max_steps)


def fit_blind_map(levels_read, psnr, map_levels, sweeps=5):
    """The (level, N) points, one at each of `map_levels`, whose map (`blind_map_steps` of
    the levels read [K]) loses least PSNR to the best step over trajectories `psnr` [K, T+1].
    Starts from the best fixed N of the rows read nearest each level (of all rows where none
    are), then sets each N in turn to the value of least gap (ties: the value it has), for up
    to `sweeps` rounds."""
    max_steps = psnr.shape[1] - 1
    nearest = np.argmin(np.abs(np.subtract.outer(levels_read, map_levels)), axis=1)
    values = []
    for i in range(len(map_levels)):
        rows = psnr[nearest == i] if np.any(nearest == i) else psnr
        values.append(max(1, int(np.argmax(rows.mean(axis=0)))))

    def gap(candidate):
        points = tuple(zip(map_levels, candidate))
        return steps_gap(blind_map_steps(points, levels_read, max_steps), psnr)

    best = gap(values)
    for _ in range(sweeps):
        before = best
        for i in range(len(values)):
            for value in range(1, max_steps + 1):
                trial = values[:i] + [value] + values[i + 1:]
                trial_gap = gap(trial)
                if trial_gap < best - 1e-9:
                    best, values = trial_gap, trial
        if best == before:
            break
    return tuple((float(level), int(n)) for level, n in zip(map_levels, values))


def advantages_of(q_network, features, step_heads=stop_rules.StepHeads()):
    """[K, T+1] Q(continue) − Q(stop) of the policy at each iterate of trajectories whose
    encoder features are `features` [K, T+1, F], the LSTM reading each from its first step;
    read by `step_heads` where given, else by the Q-network's head."""
    outputs = lstm_outputs(q_network, features)
    if step_heads:
        return step_heads.advantage(np.arange(features.shape[1]), outputs)
    q_values = q_network.head(tf.constant(outputs))
    return (q_values[..., env.CONTINUE] - q_values[..., env.STOP]).numpy()


def lstm_outputs(q_network, features):
    """[K, T+1, units] the policy's LSTM outputs along trajectories whose encoder features are
    `features` [K, T+1, F], each read from its first step."""
    count, steps = features.shape[:2]
    outputs, _ = q_network.lstm_outputs(tf.constant(features),
                                        dqn.whole_trajectory_steps(count, steps),
                                        q_network.get_initial_state(count))
    return outputs.numpy()


def fit_step_heads(q_network, features, psnr, count, ridge=STEP_HEAD_RIDGE):
    """`StepHeads` for steps 0…count−1 and one for the later steps, fitted by ridge regression
    (penalty `ridge`) of the gain of continuing (`dqn.optimal_q_targets`) on the LSTM outputs
    [h, 1] of trajectories with encoder features `features` [K, T+1, F] and PSNR `psnr`.
    The heads are fitted jointly, as one head for every step plus a change of it at each early
    step, so that an early step's head leans on all the rows and departs where its own rows
    say so."""
    outputs = lstm_outputs(q_network, features)[:, :-1]
    inputs = np.concatenate([outputs, np.ones(outputs.shape[:2] + (1,))], axis=-1)
    steps = np.arange(inputs.shape[1])[None, :, None]
    design = np.concatenate([inputs] + [inputs * (steps == n) for n in range(count)], axis=-1)
    design = design.reshape(-1, design.shape[-1])
    gain = dqn.optimal_q_targets(psnr)[..., env.CONTINUE].reshape(-1)
    weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]),
                              design.T @ gain).reshape(count + 1, -1)
    shared, changes = weights[0], weights[1:]
    return stop_rules.StepHeads([*(shared + changes), shared])


def cross_validation(advantages, psnr, blind_steps, names, folds, min_gain=STEP_MIN_GAIN,
                     pull=False, window=False, levels_read=None, map_levels=()):
    """The margin fit scored on photos it has not seen, every photo in turn: the photos (rows
    image-major, level-minor; a photo's levels are `names`) fall into `folds` groups (every
    folds-th photo), and each group stops with the margin fitted on the others (`fit_margin`
    with `min_gain`, and with a `pull` toward the `estimate` rule's steps `blind_steps` or a
    `window` around them where asked). With `levels_read` the pull or window leans toward a
    blind map's steps instead, the map fitted on the others too (`fit_blind_map` at
    `map_levels`), and the record scores that map alone as "read_level_rule". Returns the
    summaries of those stops and of the `estimate` rule's, and the per-photo difference of
    their gaps to the best step (mean and standard error, dB; negative where the learned stop
    is closer): a ranking of policies over all the calibration photos, where one split of 24
    held-out photos tells apart only policies about 0.01 dB or more apart."""
    photos = len(psnr) // len(names)
    rows = np.arange(len(psnr)).reshape(photos, len(names))
    steps = np.zeros(len(psnr), int)
    mapped = np.zeros(len(psnr), int)
    for fold in range(folds):
        scored = rows[fold::folds].ravel()
        fitted = np.setdiff1d(rows, scored)
        lean_steps = blind_steps
        if levels_read is not None:
            points = fit_blind_map(levels_read[fitted], psnr[fitted], map_levels)
            lean_steps = blind_map_steps(points, levels_read, psnr.shape[1] - 1)
            mapped[scored] = lean_steps[scored]
        margin = fit_margin(advantages[fitted], psnr[fitted], len(names), min_gain,
                            lean_steps[fitted], pull, window)[1]
        steps[scored] = stop_steps(advantages[scored], margin, lean_steps[scored])
    per_row = stop_gaps(steps, psnr) - stop_gaps(blind_steps, psnr)
    difference = per_row.reshape(photos, -1).mean(axis=1)
    record = {"folds": folds, "images": photos,
              "calibrated": summaries(steps, psnr, names),
              "estimate": summaries(blind_steps, psnr, names),
              "gap_difference_db": {"mean": round(float(difference.mean()), 4),
                                    "standard_error": round(float(difference.std(ddof=1)
                                                                  / np.sqrt(photos)), 4)}}
    if levels_read is not None:
        record["read_level_rule"] = summaries(mapped, psnr, names)
    return record


def summary(steps, psnr):
    """PSNR loss to the best step and chosen − best step of `steps` [K], over all rows."""
    best = np.argmax(psnr, axis=1)
    return {"psnr_gap_db": round(steps_gap(steps, psnr), 4),
            "step_error_mean": round(float(np.mean(steps - best)), 3),
            "step_error_std": round(float(np.std(steps - best)), 3)}


def summaries(steps, psnr, names):
    """`summary` over all rows and per level, named by `names` (`level_names`; rows are
    image-major, level-minor)."""
    per_level = {name: summary(steps[i::len(names)], psnr[i::len(names)])
                 for i, name in enumerate(names)}
    return {"all": summary(steps, psnr), "levels": per_level}


def level_names(levels, exact_levels=False):
    """The names of the levels a calibration scores per photo: each nominal level ("15"), and
    with `exact_levels` then each again at that level exactly ("15 exact")."""
    names = [f"{level:g}" for level in levels]
    return names + [f"{name} exact" for name in names] if exact_levels else names


def joined_levels(jittered, exact, level_count):
    """The rows of two trajectory arrays of the same photos joined photo by photo: each photo's
    `level_count` rows of `jittered`, then its rows of `exact`, so that the rows stay
    image-major with 2 · level_count levels per photo."""
    shape = (-1, level_count) + jittered.shape[1:]
    joined = np.concatenate([jittered.reshape(shape), exact.reshape(shape)], axis=1)
    return joined.reshape((-1,) + jittered.shape[1:])


def spread(files, count):
    """`count` of `files` spread evenly over them."""
    return files[::max(1, len(files) // count)][:count] if count else []


def encoder_digest(q_network):
    """sha256 of the policy encoder's weights: what the kept features depend on (not the LSTM,
    head or margin, which a calibration may refit)."""
    digest = hashlib.sha256()
    for variable in q_network.encoder.variables:
        digest.update(variable.numpy().tobytes())
    return digest.hexdigest()


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


def calibrate(policy_dir, config, image_set="CBSD432", data_dir="", images=48, seed=1,
              held_out=0, trajectories_file="", fit_images=0, fit_iterations=FIT_ITERATIONS,
              folds=0, step_min_gain=STEP_MIN_GAIN, pull=False, window=False,
              exact_levels=False, blind_map=False, step_heads=0):
    """Chooses the margin of the policy that a run of `config` (a `dqn.DqnConfig`) exported to
    `policy_dir` and writes it there; returns the record. With `held_out` photos, spread over
    those the margin is not fitted on, the record also scores the calibrated policy and the
    `estimate` rule on them: a gap to the best step that the fit has not seen, for choosing
    between policies without a test set. With `trajectories_file`, the trajectories are kept
    there and read back (`cached_trajectories`). With `folds`, the record also holds the
    `cross_validation` of the margin fit over the fitted and held-out photos together. A
    per-step margin leaves the curve only on a gain above `step_min_gain` dB (`refine_steps`).
    With `pull` the margin leans toward the `estimate` rule's step, and with `window` it also
    holds the stop around it (`fit_margin`). With `blind_map` they lean toward the steps of a
    (level, N) map of the level `stop_rules.read_level` reads instead (`fit_blind_map`, fitted
    on the same photos first and saved in the margin), and the record scores that map alone
    as "read_level_rule". With `exact_levels` every photo is also calibrated and scored at the
    training levels themselves, beside the jittered ones.

    With `fit_images`, the policy's LSTM and head are first fitted further, from their trained
    weights, to the optimal Q-values of the trajectories of that many other photos of the set
    (`dqn.fit_q_values`, `fit_iterations` batches), and the policy folder is rewritten with
    them. The Q-network was trained on patches, where the whole image's σ and blockiness are
    read off a patch; on whole photos those readings are sharper, and an LSTM fitted there can
    lean on them more. Those photos are neither the margin's nor the held-out ones: the margin
    then corrects what the fit does not carry over to photos it has not seen. With
    `step_heads`, the fit ends with that many `StepHeads` for the first steps and one for the
    rest (`fit_step_heads`), fitted on the same photos; they then read the advantage in place
    of the head. A policy fits once: its record keeps the fit and its step heads, and fitting
    it again raises."""
    if blind_map and not (pull or window):
        raise ValueError("a blind map is what a pull or a window leans toward: ask for one")
    if step_heads and not fit_images:
        raise ValueError("step heads are fitted on the fit's photos: give fit_images")
    task = tasks.get(config.task)
    files = sets.resolve(image_set, data_dir or None)
    fitted = spread(files, images)
    unfitted = spread([path for path in files if path not in fitted], held_out)
    network_photos = spread([path for path in files if path not in fitted + unfitted],
                            fit_images)
    levels = dqn.training_levels(task, config.level_count, tuple(config.level_range))
    q_network = dqn.load_policy_network(policy_dir, config)
    calibration = stop_rules.read_calibration(policy_dir)
    fit = calibration.get("fit")
    heads = stop_rules.StepHeads(calibration.get("step_heads", ()))
    if fit and fit_images:
        raise ValueError(f"the policy in {policy_dir} was fitted on photos already; fit a copy "
                         "of the policy its run exported instead")

    runs = [("fitted", fitted, seed, True), ("held_out", unfitted, seed + 1, True),
            ("network", network_photos, seed + 2, True)]
    if exact_levels:
        runs += [("fitted_exact", fitted, seed + 3, False),
                 ("held_out_exact", unfitted, seed + 4, False)]
    runs = [run for run in runs if run[1]]

    def compute():
        cell, _ = restorer_io.load_restorer(config.restorer or task.name)
        arrays = {}
        for prefix, paths, trajectory_seed, jitter in runs:
            cleans = [task.read_clean(path) for path in paths]
            found = trajectories(cell, q_network.encoder, task, cleans, levels,
                                 config.max_steps, trajectory_seed, jitter)
            arrays.update({f"{prefix}_{name}": array
                           for name, array in zip(TRAJECTORY_ARRAYS, found)})
        return arrays

    key = {"task": task.name, "restorer": config.restorer or task.name,
           "encoder": encoder_digest(q_network), "levels": [float(v) for v in levels],
           "max_steps": config.max_steps, "seed": seed,
           "fitted": [os.path.basename(path) for path in fitted],
           "held_out": [os.path.basename(path) for path in unfitted],
           "network": [os.path.basename(path) for path in network_photos]}
    if exact_levels:  # only then, so that files kept without it still match
        key["exact_levels"] = True
    arrays = cached_trajectories(trajectories_file, key, compute)
    if fit_images:
        features, psnr = arrays["network_features"], arrays["network_psnr"]
        first, last = dqn.fit_q_values(q_network, features[:, :-1], dqn.optimal_q_targets(psnr),
                                       fit_iterations, seed=config.seed)
        fit = {"images": fit_images, "iterations": fit_iterations,
               "huber_loss": [round(first, 5), round(last, 5)]}
        if step_heads:
            heads = fit_step_heads(q_network, features, psnr, step_heads)
            fit.update(step_heads=step_heads, step_head_ridge=STEP_HEAD_RIDGE)
    names = level_names(levels, exact_levels)
    if blind_map:  # X_0 only: made and read again, in seconds
        for prefix, paths, trajectory_seed, jitter in runs:
            if prefix != "network":
                arrays[f"{prefix}_levels_read"] = read_levels(
                    task, [task.read_clean(path) for path in paths], levels, trajectory_seed,
                    jitter)
    row_arrays = TRAJECTORY_ARRAYS + (("levels_read",) if blind_map else ())

    def rows_of(prefix):
        """{name: rows} of a run's arrays, its exact-level rows joined photo by photo, with
        the policy's advantages in place of the features."""
        rows = {name: arrays[f"{prefix}_{name}"] for name in row_arrays}
        if exact_levels:
            rows = {name: joined_levels(row, arrays[f"{prefix}_exact_{name}"], len(levels))
                    for name, row in rows.items()}
        rows["advantages"] = advantages_of(q_network, rows.pop("features"), heads)
        return rows

    scored = {prefix: rows_of(prefix)
              for prefix in ("fitted", "held_out") if f"{prefix}_psnr" in arrays}
    fitted_rows = scored["fitted"]
    points = ()
    if blind_map:
        points = fit_blind_map(fitted_rows["levels_read"], fitted_rows["psnr"], levels)
    for rows in scored.values():  # the steps a pull or a window leans toward
        rows["lean_steps"] = (blind_map_steps(points, rows["levels_read"], config.max_steps)
                              if blind_map else rows["blind_steps"])
    curve, margin = fit_margin(fitted_rows["advantages"], fitted_rows["psnr"], len(names),
                               step_min_gain, fitted_rows["lean_steps"], pull, window)
    curve, margin = (dataclasses.replace(m, blind_map=points) for m in (curve, margin))
    record = {"margin": dataclasses.asdict(margin), "set": image_set, "images": len(fitted),
              "levels": list(levels), "exact_levels": exact_levels,
              "max_steps": config.max_steps, "seed": seed, "step_min_gain_db": step_min_gain}
    if fit:
        record["fit"] = fit
    if heads:
        record["step_heads"] = [list(row) for row in heads.rows]

    def scores(rows, margins):
        """Summaries of the stops with each of {name: margin} and of the blind rules."""
        found = {name: summaries(stop_steps(rows["advantages"], stop_margin, rows["lean_steps"]),
                                 rows["psnr"], names)
                 for name, stop_margin in margins.items()}
        found["estimate"] = summaries(rows["blind_steps"], rows["psnr"], names)
        if blind_map:
            found["read_level_rule"] = summaries(rows["lean_steps"], rows["psnr"], names)
        return found

    record.update(scores(fitted_rows, {"greedy": stop_rules.StopMargin(), "curve": curve,
                                       "calibrated": margin}))
    if unfitted:
        record["held_out"] = {"images": len(unfitted),
                              **scores(scored["held_out"], {"calibrated": margin})}
    if folds:  # the fitted photos, then the held-out ones
        every = {name: np.concatenate([rows[name] for rows in scored.values()])
                 for name in fitted_rows}
        record["cross_validation"] = cross_validation(
            every["advantages"], every["psnr"], every["blind_steps"], names, folds,
            step_min_gain, pull, window, every.get("levels_read"), levels)
    write_policy(policy_dir, record, q_network if fit_images else None, task.channels)
    return record


def write_policy(policy_dir, record, q_network=None, channels=1):
    """Writes the margin's record beside the policy, and with `q_network` the network too: the
    folder is then staged and renamed in (`restorer_io.replace_folder`), so that a kill
    mid-write leaves the policy as it was."""
    folder = policy_dir
    if q_network is not None:
        folder = os.path.normpath(policy_dir) + ".partial"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(policy_dir, folder)
        dqn.export_policy(q_network, channels, folder)
    with open(os.path.join(folder, stop_rules.MARGIN_FILE), "w") as handle:
        json.dump(record, handle, indent=2)
    if q_network is not None:
        restorer_io.replace_folder(folder, policy_dir)


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
                        "with the same policy encoder, photos, levels and seed.", **into)
    flags.DEFINE_integer("fit_images", 0, "Further photos of the set whose trajectories the "
                         "policy's LSTM and head are fitted to before the margin is chosen; the "
                         "policy folder is rewritten (0: no fit).", **into)
    flags.DEFINE_integer("fit_iterations", FIT_ITERATIONS, "Batches of that fit.", **into)
    flags.DEFINE_integer("step_heads", 0, "With --fit_images: the fit also reads the "
                         "advantage by a head per step for this many first steps and one for "
                         "the rest, fitted on the same photos (0: the policy's head).", **into)
    flags.DEFINE_integer("folds", 0, "Also score the margin fit by cross-validation over the "
                         "calibration and held-out photos together, in this many folds (0: "
                         "none).", **into)
    flags.DEFINE_float("step_min_gain", STEP_MIN_GAIN, "dB by which a per-step margin must "
                       "lower the calibration photos' gap to leave the curve (0: every gain, "
                       "as the shipped JPEG and color margins were fitted).", **into)
    flags.DEFINE_bool("pull", False, "Lean the margin toward the estimate rule's step, by "
                      "dB per step fitted with it (and in each fold).", **into)
    flags.DEFINE_bool("exact_levels", False, "Also calibrate every photo at the training "
                      "levels themselves, beside the jittered ones.", **into)
    flags.DEFINE_bool("window", False, "Also hold the stop within a window around the "
                      "estimate rule's step, fitted after the margin (and in each fold).",
                      **into)
    flags.DEFINE_bool("blind_map", False, "With --pull or --window: lean toward the steps of "
                      "a level-to-N map fitted on the same photos, of the level read as "
                      "exactly as the input allows (a JPEG's quantization table), instead of "
                      "the estimate rule's.", **into)


def main(argv):
    del argv
    config = dqn.read_config(os.path.join(FLAGS.policy, os.pardir))
    record = calibrate(FLAGS.policy, config, FLAGS.set, FLAGS.data_dir, FLAGS.images,
                       held_out=FLAGS.held_out, trajectories_file=FLAGS.trajectories,
                       fit_images=FLAGS.fit_images, fit_iterations=FLAGS.fit_iterations,
                       folds=FLAGS.folds, step_min_gain=FLAGS.step_min_gain,
                       pull=FLAGS.pull, window=FLAGS.window,
                       exact_levels=FLAGS.exact_levels, blind_map=FLAGS.blind_map,
                       step_heads=FLAGS.step_heads)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    define_flags()
    app.run(main)
