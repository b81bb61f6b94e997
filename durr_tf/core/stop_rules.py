"""Stop rules that need no learning: fixed N, the refined level→N map, blind hand-crafted rules
(estimated σ or JPEG quality → map; Mrázek–Navara decorrelation), and the oracle.

An in-graph stop rule has `initial_state(x0)` and `__call__(n, x_n, state) -> (stop [B], state)`;
`unroll.restore` shows it X_0 and then each new iterate, and stops an image where it says so.
The oracle needs the clean image, so it is not a loop rule: it picks the best step of a recorded
trajectory (`oracle_steps`).
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from durr_tf.core import jpeg_quality, restorer_io, tasks

# The paper's refined policy (Sec. 2.1): degradation level -> number of Euler steps.
REFINED_STEPS = {
    "denoise": ((25.0, 4), (35.0, 6), (45.0, 9), (55.0, 12)),  # σ on the 0–255 scale
    "deblock": ((20.0, 6), (30.0, 4)),  # JPEG quality factor
}


def refined_steps(task, level):
    """N for a level by the refined map (`mapped_steps` of REFINED_STEPS[task]).

    Unseen levels (σ = 65, 75 or QF = 10, 40) follow the slope of the nearest segment.
    """
    return mapped_steps(REFINED_STEPS[task], level)


def mapped_steps(points, level):
    """N for a level by a level→N map of (level, N) points, linear between them and
    extrapolated beyond along the nearest segment; rounded and at least 1. Works on scalars
    and tensors."""
    points = sorted(points)
    levels = tf.constant([p[0] for p in points], tf.float32)
    steps = tf.constant([p[1] for p in points], tf.float32)
    level = tf.cast(level, tf.float32)
    segment = tf.clip_by_value(
        tf.searchsorted(levels, tf.reshape(level, [-1]), side="right") - 1, 0, len(points) - 2)
    x0, x1 = tf.gather(levels, segment), tf.gather(levels, segment + 1)
    y0, y1 = tf.gather(steps, segment), tf.gather(steps, segment + 1)
    value = y0 + (tf.reshape(level, [-1]) - x0) * (y1 - y0) / (x1 - x0)
    return tf.reshape(tf.maximum(1, tf.cast(tf.round(value), tf.int32)), tf.shape(level))


class FixedSteps:
    """Stops every image after N steps; N is a scalar or one value per image."""

    def __init__(self, steps):
        self.steps = steps

    def initial_state(self, x0):
        return tf.broadcast_to(tf.cast(self.steps, tf.int32), [tf.shape(x0)[0]])

    def __call__(self, n, x, steps):
        return n >= steps, steps


def refined_rule(task, levels):
    """The refined map told the true level of each image (not blind; a reference point)."""
    return FixedSteps(refined_steps(task, levels))


def oracle_steps(psnr_per_step):
    """Index of the best step per image from a [T+1, B] PSNR table (ties: the earliest)."""
    return np.argmax(np.asarray(psnr_per_step), axis=0)


def estimate_noise_sigma(x):
    """Immerkær's fast noise estimate (1996), σ on the 0–255 scale, one value per image [B].

    The Laplacian-difference mask cancels smooth image content, leaving mostly noise; it
    overestimates on strongly textured images, which errs toward a few more steps.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.shape(x)
    # An image under 3×3 has no Laplacian response: it is read as a flat 3×3 one (σ = 0).
    x = tf.cond(tf.reduce_all(shape[1:3] >= 3), lambda: x,
                lambda: tf.zeros(tf.concat([shape[:1], [3, 3], shape[3:]], 0)))
    # The mask [[1, -2, 1], [-2, 4, -2], [1, -2, 1]] is the outer product of [1, -2, 1] with
    # itself: a second difference down the rows, then one along the columns (cheaper on a CPU
    # than the 3×3 convolution).
    rows = x[:, :-2] - 2.0 * x[:, 1:-1] + x[:, 2:]
    response = rows[:, :, :-2] - 2.0 * rows[:, :, 1:-1] + rows[:, :, 2:]
    scale = tf.sqrt(np.pi / 2.0) / 6.0
    count = tf.cast(tf.reduce_prod(tf.shape(response)[1:]), tf.float32)
    total = tf.reduce_sum(tf.abs(response), axis=[1, 2, 3])
    return 255.0 * scale * tf.math.divide_no_nan(total, count)


class EstimatedLevelRule:
    """Blind stop without learning: estimate the level from the input, then use the refined map.

    Denoising estimates σ (Immerkær); deblocking estimates the JPEG quality factor from
    blockiness (`jpeg_quality`).
    """

    ESTIMATORS = {"denoise": estimate_noise_sigma, "deblock": jpeg_quality.estimate_quality}

    def __init__(self, task="denoise"):
        self.task = task

    def initial_state(self, x0):
        return refined_steps(self.task, self.ESTIMATORS[self.task](x0))

    def __call__(self, n, x, steps):
        return n >= steps, steps


def read_level(task, x):
    """The degradation level of each image [B] read as exactly as the input allows: the
    quality factor of the libjpeg table a JPEG was quantized with (`jpeg_quality.read_quality`),
    its blockiness estimate where no table fits; Immerkær's σ for noise, which no table
    gives away."""
    if task == "deblock":
        quality = jpeg_quality.read_quality(x)
        return tf.where(quality > 0, quality, jpeg_quality.estimate_quality(x))
    return estimate_noise_sigma(x)


class ReadLevelRule(EstimatedLevelRule):
    """The blind rule with the level `read_level` reads, mapped to N by a map of (level, N)
    points that a calibration fitted on training photos (`StopMargin.blind_map`) instead of
    the refined map: for JPEG the quality factor is read exactly, and the paper's two-point map
    would then cost more than the reading (at QF 10 it extrapolates to 8 steps where the
    restorer peaks at 12)."""

    def __init__(self, task, points):
        super().__init__(task)
        self.points = points

    def initial_state(self, x0):
        return mapped_steps(self.points, read_level(self.task, x0))


def _correlation(u, v):
    """Pearson correlation per image of two [B,H,W,C] tensors (0 where one is constant)."""
    u = u - tf.reduce_mean(u, axis=[1, 2, 3], keepdims=True)
    v = v - tf.reduce_mean(v, axis=[1, 2, 3], keepdims=True)
    covariance = tf.reduce_mean(u * v, axis=[1, 2, 3])
    scale = tf.sqrt(tf.reduce_mean(u * u, axis=[1, 2, 3]) * tf.reduce_mean(v * v, axis=[1, 2, 3]))
    return tf.math.divide_no_nan(covariance, scale)


class DecorrelationRule:
    """Mrázek & Navara (2003): stop near the step where the iterate X_n and the removed part
    x − X_n are least correlated, i.e. once that correlation starts rising again.

    Causal, so it stops one step after the minimum; needs no level and no learning, but assumes
    noise independent of the signal (true for Gaussian noise, not for JPEG artifacts). A
    correlation that stops falling counts as rising, so a constant image (correlation 0 at every
    step) stops too instead of running to the step limit.
    """

    def initial_state(self, x0):
        return x0, tf.fill([tf.shape(x0)[0]], np.inf)

    def __call__(self, n, x, state):
        x0, previous = state
        current = tf.abs(_correlation(x, x0 - x))
        current = tf.where(n == 0, tf.fill(tf.shape(previous), np.inf), current)
        return (n > 0) & (current >= previous), (x0, current)


@dataclasses.dataclass(frozen=True)
class StopMargin:
    """Where the learned stop stops: before step n, once Q(continue) − Q(stop) < the margin
    m(n) = offset + scale / (n + 1), or `steps[n]` where the calibration set one.

    The zero margin is the greedy policy. The Q-network's advantage is biased upward most early
    in a trajectory, where the PSNR changes fastest per step (at σ = 25 the peak comes at step 4
    and one step past it costs 0.4 dB; at σ = 55 at step 12, 0.06 dB), so the calibrated
    margin (`agents.calibrate`) shrinks with the step. The restorer's peaks fall on a few
    steps (4 at σ = 25, 8 at σ = 40, 12 at σ = 55), where the bias differs from the curve's, so
    the calibration also fits one margin per step it has data for (`steps`); the curve covers
    the steps beyond.

    A calibration may also lean the margin toward N̂, the step of a blind rule, by `pull` dB
    per step: before step n it is m(n) + pull · (n − N̂), lower before N̂ and higher
    after it, so that the policy departs from N̂ only where its advantage says so by more than
    the steps it departs. Where a policy reads the level less well than the rule (the color
    policy stops off N̂ on photos where N̂ is the better step), N̂ then decides the common
    case and the policy the photos it reads clearly. A window holds the stop harder: never
    before N̂ − `window_below`, always by N̂ + `window_above` (None: that side is open). The
    blind rule is the `estimate` one, or with a `blind_map` of (level, N) points the
    `ReadLevelRule` with that map.
    """
    offset: float = 0.0
    scale: float = 0.0
    steps: tuple = ()
    window_below: Optional[int] = None
    window_above: Optional[int] = None
    pull: float = 0.0
    blind_map: tuple = ()

    def __post_init__(self):  # JSON lists to tuples
        object.__setattr__(self, "steps", tuple(float(v) for v in self.steps))
        object.__setattr__(self, "blind_map",
                           tuple((float(level), int(n)) for level, n in self.blind_map))

    def blind_rule(self, task):
        """The rule whose steps N̂ a pull or a window leans toward, for a task's refined map."""
        if self.blind_map:
            return ReadLevelRule(task, self.blind_map)
        return EstimatedLevelRule(task)

    def at(self, n):
        """The margin before step n (scalars, NumPy arrays or tensors, of ints or floats)."""
        n = tf.cast(n, tf.float32) if tf.is_tensor(n) else np.asarray(n, np.float64)
        curve = self.offset + self.scale / (n + 1.0)
        if not self.steps:
            return curve
        last = len(self.steps) - 1
        if tf.is_tensor(n):
            index = tf.cast(n, tf.int32)
            table = tf.gather(tf.constant(self.steps, curve.dtype), tf.minimum(index, last))
            return tf.where(index <= last, table, curve)
        index = n.astype(int)
        return np.where(index <= last, np.asarray(self.steps)[np.minimum(index, last)], curve)

    @property
    def has_window(self):
        return self.window_below is not None or self.window_above is not None

    @property
    def reads_blind_steps(self):
        """Whether the stop depends on N̂ (a pull or a window)."""
        return self.has_window or self.pull != 0.0

    def leaning(self, n, blind_steps):
        """pull · (n − N̂): what the pull adds to the margin before step n, N̂ being
        `blind_steps`. NumPy or tensors; the arguments broadcast."""
        if tf.is_tensor(n) or tf.is_tensor(blind_steps):
            return self.pull * (tf.cast(n, tf.float32) - tf.cast(blind_steps, tf.float32))
        return self.pull * (np.asarray(n, np.float64) - np.asarray(blind_steps, np.float64))

    def stops(self, n, advantage, blind_steps=None):
        """Whether to stop before step n: advantage < m(n) + pull · (n − N̂), held in the
        window around N̂ (`blind_steps`). NumPy or tensors; the arguments broadcast."""
        threshold = self.at(n)
        if self.pull:
            threshold = threshold + self.leaning(n, blind_steps)
        stop = advantage < threshold
        return self.held(n, stop, blind_steps) if self.has_window else stop

    def held(self, n, stop, blind_steps):
        """`stop` (bool, before step n) held within the window around `blind_steps` (N̂):
        False before N̂ − window_below, True from N̂ + window_above on. NumPy or tensors;
        `n`, `stop` and `blind_steps` broadcast."""
        if self.window_below is not None:
            stop = stop & (n >= blind_steps - self.window_below)
        if self.window_above is not None:
            stop = stop | (n >= blind_steps + self.window_above)
        return stop


@dataclasses.dataclass(frozen=True)
class StepHeads:
    """Q(continue) − Q(stop) read off the policy's LSTM output h by a linear head per step:
    `rows[n]` · [h, 1] before step n, the last row for every step from len(rows) − 1 on.

    The Q-network's own head is one linear read for every step and level, fitted on patches.
    On whole photos its advantage at the first steps, where low levels stop, is far off the
    gain that continuing still brings (at σ = 10–15 the peak moves between steps 1 and 3, and
    one step off it costs 0.7–2 dB), while a read of the same LSTM output fitted for that step
    alone tells it well (`agents.calibrate.fit_step_heads` fits them on training photos; they
    replace the head where a policy's calibration has them).
    """
    rows: tuple = ()

    def __post_init__(self):  # JSON lists to tuples
        object.__setattr__(self, "rows", tuple(tuple(float(v) for v in row)
                                               for row in self.rows))

    def __bool__(self):
        return bool(self.rows)

    def advantage(self, n, output):
        """The advantage before step n of LSTM outputs: a scalar step n (a tensor) and `output`
        [B, units] give [B]; steps n [T] (NumPy) and `output` [K, T, units] give [K, T]."""
        last = len(self.rows) - 1
        if tf.is_tensor(output):
            row = tf.gather(tf.constant(self.rows, output.dtype),
                            tf.minimum(tf.cast(n, tf.int32), last))
            return tf.linalg.matvec(output, row[:-1]) + row[-1]
        table = np.asarray(self.rows)[np.minimum(np.asarray(n), last)]  # [T, units + 1]
        return np.einsum("ktu,tu->kt", output, table[:, :-1]) + table[:, -1]


class LearnedStopRule(tf.Module):
    """The trained policy unit (agents.train_dqn's export, a TensorFlow-only SavedModel).

    Before each step n its Q-network reads the current iterate with its LSTM state and stops an
    image where Q(continue) − Q(stop) < its margin (`StopMargin.stops`): the shipped policies carry
    a margin calibrated on whole training images (MARGIN_FILE beside the SavedModel), read
    unless one is given; without one the policy is greedy. A margin with a pull or a window
    leans or holds the stop toward a blind rule's step (`StopMargin.blind_rule` of
    `refined_map`, the task's). Where the calibration also fitted `StepHeads`, they read the
    advantage off the LSTM output in place of the Q-network's head. Loads without TF-Agents; a
    tf.Module so that an exported serving graph tracks (and saves) the policy's variables.
    """

    def __init__(self, path, margin=None, refined_map=None):
        super().__init__(name="learned_stop")
        self.path = path
        self.policy = tf.saved_model.load(path)  # keeps the variables alive
        self.step = self.policy.signatures["step"]
        self.units = int(self.step.structured_input_signature[1]["h"].shape[-1])
        calibration = read_calibration(path)
        self.margin = StopMargin(**calibration.get("margin", {})) if margin is None else margin
        self.step_heads = StepHeads(calibration.get("step_heads", ()))
        self.blind_rule = None
        if self.margin.reads_blind_steps:
            if refined_map is None:
                raise ValueError(f"the margin of {path} leans the stop toward a blind "
                                 "rule's step: give the task's refined_map")
            self.blind_rule = self.margin.blind_rule(refined_map)

    @property
    def parameters(self):
        """Number of weights of the policy's Q-network, with its step heads."""
        heads = sum(len(row) for row in self.step_heads.rows)
        return heads + sum(int(v.shape.num_elements()) for v in self.step.variables)

    def initial_state(self, x0):
        """The LSTM's zero state, and with a pull or a window the blind rule's steps N̂ of
        `x0`."""
        zeros = tf.zeros([tf.shape(x0)[0], self.units])
        if self.blind_rule is None:
            return zeros, zeros
        return zeros, zeros, self.blind_rule.initial_state(x0)

    def advantage(self, n, x, state):
        """Q(continue) − Q(stop) per image [B] before step n (the dB the policy expects further
        steps to gain) and the next LSTM state."""
        out = self.step(iterate=x, h=state[0], c=state[1])
        if self.step_heads:  # an LSTM cell's output is its new h
            advantage = self.step_heads.advantage(n, out["h"])
        else:
            advantage = out["q_values"][:, 0] - out["q_values"][:, 1]
        return advantage, (out["h"], out["c"])

    def __call__(self, n, x, state):
        n = tf.cast(n, tf.int32)
        advantage, lstm_state = self.advantage(n, x, state[:2])
        if self.blind_rule is None:
            return self.margin.stops(n, advantage), lstm_state
        blind_steps = state[2]
        return self.margin.stops(n, advantage, blind_steps), (*lstm_state, blind_steps)


MARGIN_FILE = "stop_margin.json"


def read_calibration(policy_path):
    """The calibration's record saved beside a policy (MARGIN_FILE): its `StopMargin`
    ("margin") and any `StepHeads` ("step_heads"); {} where it has none, the greedy policy
    read by its Q-network's head."""
    path = os.path.join(policy_path, MARGIN_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


# The hand-crafted (no learning, no level) rule of each task: Mrázek–Navara for noise; for JPEG,
# whose artifacts are correlated with the image, the quality estimated from blockiness.
HANDCRAFTED = {"denoise": "decorrelation", "deblock": "estimate"}


def parse_stop_rule(spec, task_name, level=None):
    """A causal stop rule of a task from its command-line name: learned (the task's shipped
    policy), dqn:PATH, handcrafted, estimate, decorrelation, refined (needs the level), fixed:N."""
    refined_map = tasks.get(task_name).refined_map
    if spec == "handcrafted":
        spec = HANDCRAFTED[refined_map]
    if spec == "estimate":
        return EstimatedLevelRule(refined_map)
    if spec == "decorrelation":
        return DecorrelationRule()
    if spec == "learned":
        path = restorer_io.pretrained_policy(task_name)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"no learned {task_name} policy is shipped at {path}: "
                                    "train one with python -m agents.train_dqn and pass "
                                    "--stop dqn:RUN_DIR/policy")
        return LearnedStopRule(path, refined_map=refined_map)
    if spec.startswith("dqn:"):
        return LearnedStopRule(spec.split(":", 1)[1], refined_map=refined_map)
    if spec == "refined":
        if level is None:
            raise ValueError("the refined stop rule needs the degradation level (--level)")
        return refined_rule(refined_map, tf.constant([float(level)]))
    if spec.startswith("fixed:"):
        return FixedSteps(int(spec.split(":", 1)[1]))
    raise ValueError(f"unknown stop rule {spec!r}: use learned, dqn:PATH, handcrafted, "
                     "estimate, decorrelation, refined or fixed:N (evaluate also takes oracle)")
