"""The restoration cell f(X; w): a small U-Net used as the vector field of the Euler step.

Fully convolutional on any H×W: the input is reflect-padded up to a multiple of the U-Net's
total stride and the output is cropped back, so 321×481 and 7×5 images both work.
"""

import keras
import tensorflow as tf
from keras import layers

STRIDE = 4  # two 2× downsamplings
WIDTHS = (16, 40, 88)  # 174,577 parameters for one channel (the paper: ~1.8e5)


class PadToStride(layers.Layer):
    """Pads H and W up to a multiple of `STRIDE`: reflection, or edge replication for sides too
    short to reflect (REFLECT needs the pad to be smaller than the side, e.g. not for 1×1)."""

    def call(self, x):
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        pad_h = (-h) % STRIDE
        pad_w = (-w) % STRIDE
        paddings = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        return tf.cond(
            tf.logical_and(h > pad_h, w > pad_w),
            lambda: tf.pad(x, paddings, mode="REFLECT"),
            lambda: _edge_pad(x, pad_h, pad_w),
        )


def _edge_pad(x, pad_h, pad_w):
    """Repeats the last row/column: works for any size, including 1×1."""
    last_row = x[:, -1:, :, :]
    x = tf.concat([x, tf.repeat(last_row, pad_h, axis=1)], axis=1)
    last_col = x[:, :, -1:, :]
    return tf.concat([x, tf.repeat(last_col, pad_w, axis=2)], axis=2)


class CropLike(layers.Layer):
    """Crops the first input back to the spatial size of the second."""

    def call(self, x, reference):
        return x[:, : tf.shape(reference)[1], : tf.shape(reference)[2], :]


def _conv(filters, name, policy, strides=1):
    return layers.Conv2D(filters, 3, strides=strides, padding="same", activation="relu",
                         name=name, dtype=policy)


def build_unet(channels=1, widths=WIDTHS, dtype_policy=None, name="durr_unet"):
    """Returns the Keras U-Net f: [B,H,W,C] float32 -> [B,H,W,C] float32 (the update direction).

    `dtype_policy="mixed_bfloat16"` runs the convolutions in bfloat16; input and output stay
    float32 so the iterates X_n are always float32.
    """
    c1, c2, c3 = widths
    policy = dtype_policy or keras.config.dtype_policy()
    inputs = keras.Input(shape=(None, None, channels), name="x")
    x = PadToStride(name="pad", dtype="float32")(inputs)

    e1 = _conv(c1, "enc1_a", policy)(x)
    e1 = _conv(c1, "enc1_b", policy)(e1)
    e2 = _conv(c2, "down1", policy, strides=2)(e1)
    e2 = _conv(c2, "enc2", policy)(e2)
    b = _conv(c3, "down2", policy, strides=2)(e2)
    b = _conv(c3, "bottleneck", policy)(b)
    u2 = layers.Conv2DTranspose(c2, 2, strides=2, name="up2", dtype=policy)(b)
    u2 = layers.Concatenate(name="skip2", dtype=policy)([u2, e2])
    u2 = _conv(c2, "dec2", policy)(u2)
    u1 = layers.Conv2DTranspose(c1, 2, strides=2, name="up1", dtype=policy)(u2)
    u1 = layers.Concatenate(name="skip1", dtype=policy)([u1, e1])
    u1 = _conv(c1, "dec1", policy)(u1)
    out = layers.Conv2D(channels, 3, padding="same", name="out", dtype="float32",
                        kernel_initializer="zeros")(u1)
    out = CropLike(name="crop", dtype="float32")(out, inputs)
    return keras.Model(inputs, out, name=name)
