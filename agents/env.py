"""The stop environment: an episode walks the frozen restorer's trajectory of one degraded patch.

Observation: the current iterate X_n ([P,P,C] float32). Actions: 0 = continue, 1 = stop.
Reward: λ(L(X_{n-1}, y) − L(X_n, y)) for continue, 0 for stop (the paper's Eq. 4), with L the
MSE on [0,1] images. Per-step MSE drops are 1e-4 to 1e-2, so λ = 100 makes rewards O(0.01–1).
An episode ends on stop or after `max_steps` continues.

The restorer is frozen while the policy trains, so every trajectory is computed once
(`TrajectoryCache`) and episodes replay them: the environment contract is unchanged and an
episode costs no network evaluation on the CPU.
"""

import numpy as np
import tensorflow as tf
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from durr_tf import unroll

CONTINUE, STOP = 0, 1
REWARD_SCALE = 100.0


class TrajectoryCache:
    """Iterates [K, T+1, P, P, C] and losses [K, T+1] of K degraded patches under the restorer."""

    def __init__(self, iterates, losses, levels):
        self.iterates = np.asarray(iterates, np.float32)
        self.losses = np.asarray(losses, np.float64)
        self.levels = np.asarray(levels, np.float32)

    @property
    def max_steps(self):
        return self.iterates.shape[1] - 1

    @classmethod
    def build(cls, cell, batches, max_steps):
        """Unrolls the frozen cell on (degraded, clean, level) batches and records everything."""
        step = tf.function(lambda x: unroll.euler_step(cell, x))
        iterates, losses, levels = [], [], []
        for degraded, clean, level in batches:
            x = tf.constant(degraded)
            path = [degraded]
            for _ in range(max_steps):
                x = step(x)
                path.append(x.numpy())
            path = np.stack(path, axis=1)  # [B, T+1, P, P, C]
            iterates.append(path)
            losses.append(np.mean((path - clean[:, None]) ** 2, axis=(2, 3, 4)))
            levels.append(level)
        return cls(np.concatenate(iterates), np.concatenate(losses), np.concatenate(levels))

    def oracle_steps(self):
        return np.argmin(self.losses, axis=1)


class StopEnvironment(py_environment.PyEnvironment):
    """TF-Agents environment over a `TrajectoryCache`; episodes drawn at random (seeded)."""

    def __init__(self, cache, seed=0):
        super().__init__()
        self._cache = cache
        self._rng = np.random.default_rng(seed)
        shape = cache.iterates.shape[2:]
        self._observation_spec = array_spec.ArraySpec(shape, np.float32, name="iterate")
        self._action_spec = array_spec.BoundedArraySpec((), np.int32, CONTINUE, STOP,
                                                        name="stop")
        self._episode, self._n, self._done, self._next = 0, 0, True, None

    def observation_spec(self):
        return self._observation_spec

    def action_spec(self):
        return self._action_spec

    def select_episode(self, index):
        """Makes the next reset replay episode `index` (for evaluation)."""
        self._next = index

    def _observation(self):
        return self._cache.iterates[self._episode, self._n]

    def _reset(self):
        if self._next is None:
            self._episode = int(self._rng.integers(len(self._cache.iterates)))
        else:
            self._episode, self._next = self._next, None
        self._n, self._done = 0, False
        return ts.restart(self._observation())

    def _step(self, action):
        if self._done:
            return self.reset()
        if int(action) == STOP:
            self._done = True
            return ts.termination(self._observation(), np.float32(0.0))
        losses = self._cache.losses[self._episode]
        self._n += 1
        reward = np.float32(REWARD_SCALE * (losses[self._n - 1] - losses[self._n]))
        if self._n >= self._cache.max_steps:
            self._done = True
            return ts.termination(self._observation(), reward)
        return ts.transition(self._observation(), reward, discount=np.float32(1.0))
