"""How a restorer restores an image of any channel layout: gray, gray+alpha, RGB or RGBA.

The one place for this rule, shared by `restore` (files) and `export` (served image bytes):
- an alpha channel (2 or 4 channels) is carried over untouched;
- a 1-channel model restores an RGB image either per channel ("per_channel", for denoising:
  Gaussian noise is independent per channel, so chroma noise goes too, which restoring only the
  luminance would leave) or only its Y of YCbCr, recombined with the original chroma ("luma",
  for JPEG deblocking, where the artifacts live in Y);
- a 3-channel model restores a gray image as RGB.
Core TensorFlow ops only, so the rule can live inside a served graph.
"""

import tensorflow as tf

from data import color

COLOR_MODES = ("per_channel", "luma")


def restore_image(run, image, channels, color_mode):
    """Restores one float32 [H,W,K] image, K in 1..4, with `run` ([B,H,W,channels] -> (out, steps)).

    Returns the restored [H,W,K] image and the steps [P] of each model input (one per restored
    plane for "per_channel", else one).
    """
    if color_mode not in COLOR_MODES:
        raise ValueError(f"unknown color mode {color_mode!r}; one of {COLOR_MODES}")
    image = tf.convert_to_tensor(image, tf.float32)
    count = tf.shape(image)[-1]
    has_alpha = tf.logical_or(tf.equal(count, 2), tf.equal(count, 4))
    pixels = image[..., : count - tf.cast(has_alpha, tf.int32)]
    is_gray = tf.equal(tf.shape(pixels)[-1], 1)

    def as_batch(planes, depth):
        return tf.ensure_shape(planes, [None, None, depth])[None]

    def gray():
        restored, steps = run(as_batch(pixels, 1))
        return restored[0], steps

    def rgb():
        rgb_pixels = as_batch(pixels, 3)[0]
        if color_mode == "luma":
            ycbcr = color.rgb_to_ycbcr_tf(rgb_pixels)
            y, steps = run(ycbcr[None, ..., :1])
            return color.ycbcr_to_rgb_tf(tf.concat([y[0], ycbcr[..., 1:]], axis=-1)), steps
        restored, steps = run(tf.transpose(rgb_pixels, [2, 0, 1])[..., None])  # planes as batch
        return tf.transpose(restored[..., 0], [1, 2, 0]), steps

    if channels == 1:
        restored, steps = tf.cond(is_gray, gray, rgb)
    elif channels == 3:
        rgb_pixels = tf.cond(is_gray, lambda: tf.image.grayscale_to_rgb(pixels), lambda: pixels)
        restored, steps = run(as_batch(rgb_pixels, 3))
        restored = restored[0]
    else:
        raise ValueError(f"models of 1 or 3 channels restore images; this one has {channels}")
    restored = tf.cond(has_alpha, lambda: tf.concat([restored, image[..., -1:]], -1),
                       lambda: restored)
    return restored, steps
