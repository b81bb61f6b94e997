"""tf.data training pipelines: random crop → one of the 8 flips/rotations → degrade → batch.

Every patch is a pure function of (seed, patch index) through stateless random ops, so the
stream is deterministic under a seed and a resumed run continues exactly where it stopped by
starting the index range at `start_batch * batch_size`; no iterator state needs saving.
One degradation level is drawn per batch, because the refined policy unrolls a level-dependent
number of steps and a batch must share it.
"""

import numpy as np
import tensorflow as tf

from data import degradations
from data.images import ImageReadError, read_image, to_gray


def load_training_images(paths, channels=1, min_size=1, log=print, prepare=None):
    """Reads image files as uint8 [H,W,channels] arrays, dropping those smaller than min_size.

    `prepare` maps a read float image to the clean image a task trains on (for JPEG deblocking,
    Y of YCbCr, as in evaluation); by default gray by the BT.601 weights, or RGB. Unreadable
    files are reported through `log` and skipped, so one bad file in a user's folder does not
    stop a training run.
    """
    images, unreadable = [], 0
    for path in paths:
        try:
            image, _ = read_image(path)
        except ImageReadError as error:
            log(f"skipping training file: {error}")
            unreadable += 1
            continue
        if prepare is not None:
            image = prepare(image)
        else:
            image = to_gray(image) if channels == 1 else image[..., :3]
        if image.shape[-1] != channels:
            raise ValueError(f"{path}: has {image.shape[-1]} channel(s), the model expects {channels}")
        if min(image.shape[:2]) >= min_size:
            images.append(np.round(image * 255).astype(np.uint8))
    if not images:
        raise ValueError(f"no training image of at least {min_size}x{min_size} pixels among "
                         f"{len(paths)} file(s) ({unreadable} of them unreadable)")
    return images


class _PackedImages:
    """Images of any sizes packed in one flat uint8 buffer, so tf.data can gather one by index."""

    def __init__(self, images):
        self.count = len(images)
        self.flat = tf.constant(np.concatenate([im.ravel() for im in images]))
        sizes = [im.size for im in images]
        self.offsets = tf.constant(np.cumsum([0] + sizes[:-1]), tf.int64)
        self.shapes = tf.constant([im.shape for im in images], tf.int64)

    def get(self, index):
        shape = self.shapes[index]
        start = self.offsets[index]
        return tf.reshape(self.flat[start:start + tf.reduce_prod(shape)], shape)


def _augment(patch, mode):
    """Applies one of the 8 dihedral transforms (4 rotations × optional flip)."""
    patch = tf.image.rot90(patch, k=mode % 4)
    return tf.cond(mode >= 4, lambda: tf.image.flip_left_right(patch), lambda: patch)


def patch_dataset(images, degrade, patch_size=64, batch_size=24, seed=0, start_batch=0):
    """Yields (degraded, clean, level) batches: float32 [B,p,p,C], float32 [B,p,p,C], float32 [B].

    `degrade(clean_batch, seed_pair) -> (degraded_batch, level)` applies one level per batch.
    Starts at batch number `start_batch` (for resuming) and never ends.
    """
    packed = _PackedImages(images)
    channels = images[0].shape[-1]

    def make_patch(index):
        image_seed = tf.stack([tf.cast(seed, tf.int64), index])
        keys = tf.random.experimental.stateless_split(image_seed, 3)
        which = tf.random.stateless_uniform([], keys[0], maxval=packed.count, dtype=tf.int64)
        image = packed.get(which)
        patch = tf.image.stateless_random_crop(image, [patch_size, patch_size, channels], keys[1])
        mode = tf.random.stateless_uniform([], keys[2], maxval=8, dtype=tf.int32)
        return index, tf.cast(_augment(patch, mode), tf.float32) / 255.0

    def degrade_batch(indices, clean):
        batch_number = indices[0] // batch_size
        degraded, level = degrade(clean, tf.stack([tf.cast(seed, tf.int64) + 1, batch_number]))
        level = tf.fill([tf.shape(clean)[0]], tf.cast(level, tf.float32))
        return degraded, clean, level

    return (tf.data.Dataset.range(start_batch * batch_size, np.iinfo(np.int64).max)
            .map(make_patch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(batch_size, drop_remainder=True)
            .map(degrade_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def gaussian_noise_degrader(levels=degradations.NOISE_LEVELS_TRAIN):
    """Degrader for `patch_dataset`: one σ drawn from `levels` per batch, noise added unclipped."""

    def degrade(clean, seed_pair):
        keys = tf.random.experimental.stateless_split(seed_pair, 2)
        sigma = degradations.sample_noise_level(keys[0], levels)
        return degradations.add_gaussian_noise(clean, sigma, keys[1]), sigma

    return degrade


def jpeg_degrader(qualities=degradations.JPEG_QUALITIES_TRAIN):
    """Degrader for `patch_dataset`: one QF drawn per batch, TensorFlow's JPEG encoder.

    tf.io.encode_jpeg takes the quality as a constant, so each training QF is its own branch.
    """

    def degrade(clean, seed_pair):
        index = degradations.sample_jpeg_quality(seed_pair, qualities)
        degraded = tf.switch_case(index, [
            (lambda q=q: degradations.jpeg_tf(clean, q)) for q in qualities])
        degraded = tf.ensure_shape(degraded, clean.shape)
        return degraded, tf.gather(tf.constant(qualities, tf.float32), index)

    return degrade
