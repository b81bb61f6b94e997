"""What each restoration task is: channels, levels, degradations and color handling.

One entry per task, so the trainer, the evaluator and the CLIs never branch on task names.
"""

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from data import color, degradations, pipelines
from data.images import read_image, to_8bit, to_gray


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    channels: int
    train_levels: tuple  # degradation levels seen in training
    eval_levels: tuple  # levels of the paper's table (some unseen in training)
    level_name: str  # "sigma" or "qf"
    refined_map: str  # key of policies.REFINED_STEPS
    make_degrader: Callable  # levels -> per-batch degrader for data.pipelines.patch_dataset
    degrade_image: Callable  # (clean [H,W,C], level, seed pair) -> degraded, for evaluation
    prepare_clean: Callable  # any read image [H,W,C] -> the clean image the task works on
    color_mode: str  # how a 1-channel model restores RGB: "per_channel" or "luma"
    default_stop: str  # default stop of restore and export: the learned stop, whose policy meets
    # the target of docs/learned_stop.md for every task
    benchmark_set: str  # the paper's test set for this task
    train_set: str  # default training set (never holds an image of benchmark_set)
    val_set: str  # default validation set of the restorer's training

    @property
    def level_symbol(self):
        """How tables and figures name a level: σ or QF."""
        return "σ" if self.level_name == "sigma" else "QF"

    def degrader(self, levels=None):
        return self.make_degrader(tuple(levels or self.train_levels))

    def read_clean(self, path):
        """The clean image of a file, as the task works on it (gray, or Y of a color photo)."""
        return self.prepare_clean(read_image(path)[0])

    def degrade(self, clean, level, seed_pair):
        return np.asarray(self.degrade_image(clean, level, seed_pair), np.float32)


def _gaussian(clean, sigma, seed_pair):
    return degradations.add_gaussian_noise(clean, sigma, tf.constant(seed_pair, tf.int64))


def _jpeg(clean, quality, seed_pair):
    del seed_pair  # JPEG is deterministic
    return degradations.jpeg_pil(clean, quality)


def _rgb(image):
    """The RGB pixels of an image: alpha dropped, a gray one repeated in three channels."""
    pixels = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
    return np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels


def _luma_8bit(image):
    """The Y channel of an RGB image by the MATLAB formula, rounded to 8 bits as in DnCNN-3."""
    y = color.rgb_to_y(image[..., :3]) if image.shape[-1] >= 3 else image[..., :1]
    return (to_8bit(y) / 255).astype(np.float32)


TASKS = {
    "denoise": Task("denoise", 1, degradations.NOISE_LEVELS_TRAIN,
                    (25.0, 35.0, 45.0, 55.0, 65.0, 75.0), "sigma", "denoise",
                    pipelines.gaussian_noise_degrader, _gaussian, to_gray, "per_channel",
                    "learned", "BSD68", "Train400", "Set12"),
    "deblock": Task("deblock", 1, tuple(float(q) for q in degradations.JPEG_QUALITIES_TRAIN),
                    (10.0, 20.0, 30.0, 40.0), "qf", "deblock",
                    lambda levels: pipelines.jpeg_degrader(tuple(int(q) for q in levels)),
                    _jpeg, _luma_8bit, "luma", "learned", "LIVE1", "Train400", "Set12"),
    # The paper's supplementary color model: the same unit on RGB, noise independent per channel.
    # LIVE1 (color, not in BSDS) validates, since CBSD432 and CBSD68 together are all of BSDS500.
    "denoise_color": Task("denoise_color", 3, degradations.NOISE_LEVELS_TRAIN,
                          (15.0, 25.0, 35.0, 45.0, 55.0, 65.0, 75.0), "sigma", "denoise",
                          pipelines.gaussian_noise_degrader, _gaussian, _rgb, "per_channel",
                          "learned", "CBSD68", "CBSD432", "LIVE1"),
}


def get(name):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None
