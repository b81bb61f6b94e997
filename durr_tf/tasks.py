"""What each restoration task is: its channels, training levels, and how inputs are degraded.

One entry per task, so the trainer, the evaluator and the CLIs never branch on task names.
"""

import dataclasses

import tensorflow as tf

from data import degradations, pipelines


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    channels: int
    train_levels: tuple  # degradation levels seen in training
    eval_levels: tuple  # levels of the paper's table (some unseen in training)
    level_name: str  # "sigma" or "qf"
    refined_map: str  # key of policies.REFINED_STEPS

    def degrader(self, levels=None):
        """A per-batch degrader for data.pipelines.patch_dataset."""
        return pipelines.gaussian_noise_degrader(levels or self.train_levels)

    def degrade(self, clean, level, seed_pair):
        """Degrades one evaluation image [H,W,C] at a fixed level with a fixed seed."""
        return degradations.add_gaussian_noise(clean, level, tf.constant(seed_pair, tf.int64))


TASKS = {
    "denoise": Task("denoise", 1, degradations.NOISE_LEVELS_TRAIN,
                    (25.0, 35.0, 45.0, 55.0, 65.0, 75.0), "sigma", "denoise"),
}


def get(name):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
