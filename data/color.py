"""YCbCr by MATLAB's rgb2ycbcr (ITU-R BT.601, studio swing), the literature's Y channel.

On [0,1] RGB: Y = 16 + 65.481 R + 128.553 G + 24.966 B (on the 0–255 scale), Y in [16, 235].
`tf.image.rgb_to_yuv` is a different transform and must not be used for evaluation.
"""

import numpy as np
import tensorflow as tf

_FORWARD = np.array([[65.481, 128.553, 24.966],
                     [-37.797, -74.203, 112.0],
                     [112.0, -93.786, -18.214]])
_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(image):
    """[...,3] RGB in [0,1] -> [...,3] YCbCr in [0,1] (Y in [16,235]/255)."""
    return (_OFFSET + np.asarray(image, np.float64)[..., :3] @ _FORWARD.T) / 255.0


def ycbcr_to_rgb(image):
    """Inverse of `rgb_to_ycbcr`."""
    return (np.asarray(image, np.float64) * 255.0 - _OFFSET) @ np.linalg.inv(_FORWARD).T


def rgb_to_y(image):
    """Y channel [...,1] in [0,1] of an RGB image."""
    return rgb_to_ycbcr(image)[..., :1]


def rgb_to_ycbcr_tf(image):
    """`rgb_to_ycbcr` in core TensorFlow ops, for graphs that are served."""
    forward = tf.constant(_FORWARD.T, image.dtype)
    return (tf.tensordot(image, forward, 1) + tf.constant(_OFFSET, image.dtype)) / 255.0


def ycbcr_to_rgb_tf(image):
    """`ycbcr_to_rgb` in core TensorFlow ops."""
    inverse = tf.constant(np.linalg.inv(_FORWARD).T, image.dtype)
    return tf.tensordot(image * 255.0 - tf.constant(_OFFSET, image.dtype), inverse, 1)
