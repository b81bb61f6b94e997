"""Degradations as pure functions of (image, level, seed), each beside a sampler for training.

Noise protocol (the usual BSD68 one): images are float on [0,1], σ is given on the 0–255 scale,
noise is added in float and the noisy input is NOT clipped or quantised. The same seed always
gives the same noise (TensorFlow's stateless Philox generator).

JPEG protocol (the paper's): the 8-bit gray (Y) image is compressed by PIL at quality QF and
decoded. Training may use TensorFlow's encoder instead (`jpeg_tf`), which is fast inside
tf.data but not bit-identical to PIL's: evaluation always uses `jpeg_pil`.
"""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from data.images import to_8bit, to_8bit_tf

NOISE_LEVELS_TRAIN = (25.0, 35.0, 45.0, 55.0)
JPEG_QUALITIES_TRAIN = (20, 30)


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


def jpeg_pil(image, quality):
    """JPEG at `quality` by PIL (libjpeg) of a gray [H,W,1] image in [0,1].

    The image is quantised to 8 bits first; returns the decoded float32 [H,W,1] image.
    """
    pixels = to_8bit(np.asarray(image)[..., 0])
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"))
    return (decoded.astype(np.float32) / 255.0)[..., None]


def jpeg_tf(images, quality):
    """JPEG at a fixed `quality` (a Python int) by TensorFlow's encoder, for a [B,H,W,1] batch."""
    pixels = to_8bit_tf(images)
    decoded = tf.map_fn(
        lambda image: tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=int(quality)),
                                        channels=1),
        pixels, fn_output_signature=tf.TensorSpec([None, None, 1], tf.uint8))
    return tf.cast(decoded, tf.float32) / 255.0


def sample_jpeg_quality(seed, qualities=JPEG_QUALITIES_TRAIN):
    """Draws the index of one quality factor uniformly from the training QFs."""
    return tf.random.stateless_uniform([], seed=_seed(seed), maxval=len(qualities),
                                       dtype=tf.int32)
