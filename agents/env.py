"""The stop environment: an episode walks the frozen restorer's trajectory of one degraded patch.

Observation: the current iterate X_n ([P,P,C] float32). Actions: 0 = continue, 1 = stop.
Reward: λ(L(X_{n-1}, y) − L(X_n, y)) for continue, 0 for stop (the paper's Eq. 4), with the loss
L = 10·log10(MSE) on [0,1] images (minus the PSNR) and λ = 1, so a reward is the PSNR gained by
the step in dB: 0.5–3 on the first steps, ±0.01–0.05 near the peak. The return of a policy is
then the PSNR it reaches minus the input's, the metric it is judged by, and every σ or QF
weighs the same. With L the plain MSE the same decisions carry 100× smaller rewards at light
degradations than at heavy ones; normalising λ per episode to bound the returns leaves
the decisions near the peak, worth ~0.02 dB, at 1e-3 of the return.
An episode ends on stop or after `max_steps` continues.

Two environments share these rules (`_StopEnvironmentBase`) and differ only in where X_n comes
from. The restorer is frozen while the policy trains, so `StopEnvironment`, the fast path,
replays trajectories computed once (`TrajectoryCache`) and an episode costs no network
evaluation. `LiveStopEnvironment` runs one Euler step of the cell per continue, so the
restorer itself is the environment; on the same patches and seed both give the same episodes.
"""

import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from durr_tf.core import unroll
from durr_tf.core.progress import Progress

CONTINUE, STOP = 0, 1
REWARD_SCALE = 1.0  # λ


def mean_squared_error(iterates, clean):
    """MSE of iterates [..., P, P, C] against the clean patch, over the last three axes, summed
    in float64 so that a loss does not depend on how many iterates are measured at once."""
    return np.mean(np.square(np.subtract(iterates, clean, dtype=np.float64)), axis=(-3, -2, -1))


def psnr_loss(mse):
    """The environment's loss L = 10·log10(MSE) (minus the PSNR), floored for exact matches."""
    return 10.0 * np.log10(np.maximum(mse, 1e-12))


def _patches(batches):
    """Degraded and clean patches [K,P,P,C] of (degraded, clean, level) batches, in order."""
    degraded, clean = zip(*((d, c) for d, c, _level in batches))
    return np.concatenate(degraded).astype(np.float32), np.concatenate(clean).astype(np.float32)


class TrajectoryCache:
    """Iterates [K, T+1, P, P, C] and losses [K, T+1] of K degraded patches under the restorer."""

    def __init__(self, iterates, losses):
        self.iterates = np.asarray(iterates, np.float32)
        self.losses = np.asarray(losses, np.float64)

    @property
    def max_steps(self):
        return self.iterates.shape[1] - 1

    @classmethod
    def build(cls, cell, batches, max_steps):
        """Unrolls the frozen cell on a list of (degraded, clean, level) batches and records
        everything, logging its progress (minutes for thousands of patches)."""
        stepper = unroll.Stepper(cell)
        iterates, losses = [], []
        progress = Progress(len(batches), label="trajectories")
        for done, (degraded, clean, _level) in enumerate(batches, 1):
            path = np.stack([x.numpy() for x in stepper.trajectory(degraded, max_steps)],
                            axis=1)  # [B, T+1, P, P, C]
            iterates.append(path)
            losses.append(mean_squared_error(path, clean[:, None]))
            if done % max(1, len(batches) // 20) == 0 or done == len(batches):
                progress.update(done)
        return cls(np.concatenate(iterates), np.concatenate(losses))

    def oracle_steps(self):
        return np.argmin(self.losses, axis=1)

    def psnr_losses(self):
        """The environment's loss L per episode and step."""
        return psnr_loss(self.losses)


class _StopEnvironmentBase(py_environment.PyEnvironment):
    """The specs, seeded episode draw, reward and termination of the stop environment.

    A subclass says where the iterates come from with `_iterate(n)`, which returns X_n of the
    current episode and its loss L(X_n, y); it is called for n = 0, 1, 2, … in order, so it may
    compute X_n from X_{n-1} (`self._x`).
    """

    def __init__(self, episodes, shape, max_steps, seed):
        super().__init__()
        self._episodes, self._max_steps = episodes, max_steps
        self._rng = np.random.default_rng(seed)
        self._observation_spec = array_spec.ArraySpec(shape, np.float32, name="iterate")
        self._action_spec = array_spec.BoundedArraySpec((), np.int32, CONTINUE, STOP,
                                                        name="stop")
        self._episode, self._n, self._done = 0, 0, True
        self._x, self._loss = None, None

    def observation_spec(self):
        return self._observation_spec

    def action_spec(self):
        return self._action_spec

    def _iterate(self, n):
        raise NotImplementedError

    def _reset(self):
        self._episode = int(self._rng.integers(self._episodes))
        self._n, self._done = 0, False
        self._x, self._loss = self._iterate(0)
        return ts.restart(self._x)

    def _step(self, action):
        if self._done:
            return self.reset()
        if int(action) == STOP:
            self._done = True
            return ts.termination(self._x, np.float32(0.0))
        previous = self._loss
        self._n += 1
        self._x, self._loss = self._iterate(self._n)
        reward = np.float32(REWARD_SCALE * (previous - self._loss))
        if self._n >= self._max_steps:
            self._done = True
            return ts.termination(self._x, reward)
        return ts.transition(self._x, reward, discount=np.float32(1.0))


class StopEnvironment(_StopEnvironmentBase):
    """The stop environment over a `TrajectoryCache`: an episode replays a cached trajectory."""

    def __init__(self, cache, seed=0):
        super().__init__(len(cache.iterates), cache.iterates.shape[2:], cache.max_steps, seed)
        self._cache = cache
        self._losses = cache.psnr_losses()

    def _iterate(self, n):
        return self._cache.iterates[self._episode, n], self._losses[self._episode, n]


class LiveStopEnvironment(_StopEnvironmentBase):
    """The stop environment whose continue runs one Euler step of the frozen cell.

    Built from the (degraded, clean, level) batches a `TrajectoryCache` would be built from, it
    draws the same episodes for the same seed and gives the same transitions, up to the
    float32 rounding of a batch of one against the cache's batches.
    """

    def __init__(self, cell, batches, max_steps, seed=0):
        self._degraded, self._clean = _patches(batches)
        super().__init__(len(self._degraded), self._degraded.shape[1:], max_steps, seed)
        self._stepper = unroll.Stepper(cell)

    def _iterate(self, n):
        if n == 0:
            x = self._degraded[self._episode]
        else:
            x = self._stepper(self._x[None]).numpy()[0]
        return x, psnr_loss(mean_squared_error(x, self._clean[self._episode]))
