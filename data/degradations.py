"""Degradations as pure functions of (image, level, seed), each beside a sampler for training.

Noise protocol (the usual BSD68 one): images are float on [0,1], σ is given on the 0–255 scale,
noise is added in float and the noisy input is NOT clipped or quantised. The same seed always
gives the same noise (TensorFlow's stateless Philox generator).
"""

import tensorflow as tf

NOISE_LEVELS_TRAIN = (25.0, 35.0, 45.0, 55.0)


def _seed(seed):
    """A stateless seed: an int pair; a plain int n is read as (n, 0)."""
    seed = tf.cast(tf.reshape(tf.convert_to_tensor(seed), [-1]), tf.int64)
    return tf.concat([seed, tf.zeros([2], tf.int64)], 0)[:2]


def add_gaussian_noise(image, sigma, seed):
    """Returns image + N(0, (σ/255)²) with σ on the 0–255 scale; no clipping.

    `sigma` may be a scalar or one value per image of a batch ([B] with a [B,H,W,C] image).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    sigma = tf.cast(sigma, tf.float32) / 255.0
    if sigma.shape.rank == 1:
        sigma = tf.reshape(sigma, [-1, 1, 1, 1])
    noise = tf.random.stateless_normal(tf.shape(image), seed=_seed(seed), dtype=tf.float32)
    return image + sigma * noise


def sample_noise_level(seed, levels=NOISE_LEVELS_TRAIN):
    """Draws one σ uniformly from the discrete training levels."""
    levels = tf.constant(levels, tf.float32)
    index = tf.random.stateless_uniform([], seed=_seed(seed), maxval=tf.size(levels),
                                        dtype=tf.int32)
    return tf.gather(levels, index)
