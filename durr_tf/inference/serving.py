"""The SavedModel that TF Serving loads: restorer, stop rule and loop in one graph
(`python -m durr_tf.export`).

The only writer of served models. It writes OUT/VERSION/ (TF Serving's layout) with three
signatures, all with unknown batch, height and width (the tensor inputs are declared with an
unknown rank so that a request of the wrong shape meets an in-graph check with a clear message):

- `serving_default`: `images` float32 [B,H,W,C] in [0,1] -> `restored` float32, `steps` int32 [B]
- `restore_uint8`:   `images` uint8 [B,H,W,C]            -> `restored` uint8,   `steps` int32 [B]
- `restore_bytes`:   `image_bytes` string [] (one PNG/JPEG) -> `restored_png` string, `steps` int32 [1]

C is the model's channel count for the tensor signatures; the bytes signature takes gray, gray +
alpha, RGB or RGBA files and handles them as `restore` does (`image_layouts`); its `steps` is
the largest over the restored planes, and it refuses other formats and, from the header before
decoding, images over `max_pixels`. Every image stops on its own and the loop never exceeds
`max_steps`. Only core TensorFlow ops end up in the graph.

The U-Net computes in the precision it was loaded in, and the graph keeps it: `--precision auto`
(the default) is the choice for the exporting machine (`durr_tf.core.precision`: mixed bfloat16 on
CPUs that compute bfloat16 natively; docs/speed.md gives its cost in PSNR), so export on the
kind of machine that serves, or name the precision.
"""

import os

import keras
import tensorflow as tf

from data.images import DEFAULT_MAX_PIXELS, PNG_SIGNATURE, to_8bit_tf
from durr_tf.inference import image_layouts
from durr_tf.core import unroll

JPEG_SIGNATURE = b"\xff\xd8\xff"


class _Loop:
    """The graph behind each signature."""

    def __init__(self, cell, stop_rule, max_steps, color_mode, channels, max_pixels):
        self.cell, self.stop_rule = cell, stop_rule
        self.max_steps, self.color_mode, self.channels = max_steps, color_mode, channels
        self.max_pixels = max_pixels

    def run(self, images):
        """An empty batch comes back as it is, without running a layer: where TensorFlow's CPU
        kernels use oneDNN (Intel CPUs), a convolution returns its empty input unchanged, so the
        next layer fails on the channel count."""
        images = tf.debugging.assert_all_finite(images, "images must not hold NaN or Inf")
        return tf.cond(tf.shape(images)[0] > 0, lambda: self.unroll(images),
                       lambda: (images, tf.zeros([0], tf.int32)))

    def unroll(self, images):
        restored, steps, _ = unroll.restore(self.cell, images, self.stop_rule, self.max_steps)
        return restored, steps

    def check_shape(self, images):
        """The images, once they are known to be [B,H,W,channels]; else a clear error.

        The signatures declare an unknown rank on purpose: a declared [B,H,W,C] would let
        these checks be folded away at trace time, while a served request is not held to it.
        """
        shape = tf.shape(images)
        # Padded to 4 entries, so that a lower rank (a scalar, say) can be read without error.
        sizes = tf.pad(shape, [[0, tf.maximum(0, 4 - tf.size(shape))]])[:4]
        good = (tf.equal(tf.size(shape), 4) & tf.equal(sizes[3], self.channels)
                & tf.reduce_all(sizes[1:3] > 0))
        check = tf.debugging.Assert(good, [
            f"images must have shape [batch, height, width, {self.channels}] with height and "
            f"width of at least 1 (this model restores {self.channels}-channel images); "
            "got shape", shape])
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(images), [None, None, None, self.channels])

    def restore_float(self, images):
        restored, steps = self.run(self.check_shape(images))
        return {"restored": restored, "steps": steps}

    def restore_uint8(self, images):
        restored, steps = self.run(tf.cast(self.check_shape(images), tf.float32) / 255.0)
        return {"restored": to_8bit_tf(restored), "steps": steps}

    def check_encoded(self, image_bytes):
        """The bytes, once their header says PNG or JPEG within `max_pixels`; checked before
        decoding, so a small file that would decode to gigabytes (a decompression bomb) is
        refused."""
        is_png = tf.equal(tf.strings.substr(image_bytes, 0, 8), PNG_SIGNATURE)
        is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, 3), JPEG_SIGNATURE)
        kind = tf.debugging.Assert(is_png | is_jpeg, [
            "image_bytes must hold a PNG or JPEG file"])
        with tf.control_dependencies([kind]):
            pixels = tf.cond(is_png, lambda: _png_pixels(image_bytes),
                             lambda: tf.reduce_prod(tf.cast(
                                 tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64)))
        size = tf.debugging.Assert(pixels <= self.max_pixels, [
            f"the image is over the limit of {self.max_pixels} pixels; pixels:", pixels])
        with tf.control_dependencies([size]):
            return tf.identity(image_bytes)

    def restore_bytes(self, image_bytes):
        image_bytes = self.check_encoded(image_bytes)
        image = tf.io.decode_image(image_bytes, channels=0, expand_animations=False)
        image = tf.cast(image, tf.float32) / tf.cast(image.dtype.max, tf.float32)
        restored, steps = image_layouts.restore_image(self.run, image, self.channels,
                                                      self.color_mode)
        return {"restored_png": tf.io.encode_png(to_8bit_tf(restored)),
                "steps": tf.reduce_max(steps, keepdims=True)}


def _png_pixels(image_bytes):
    """Width × height from a PNG's IHDR chunk (bytes 16–23, two big-endian uint32)."""
    long_enough = tf.debugging.Assert(tf.strings.length(image_bytes) >= 24, [
        "image_bytes is a truncated PNG (no complete header)"])
    with tf.control_dependencies([long_enough]):
        header = tf.io.decode_raw(tf.strings.substr(image_bytes, 16, 8), tf.uint8)
    digits = tf.reshape(tf.cast(header, tf.int64), [2, 4])
    width_height = tf.reduce_sum(digits * tf.constant([2 ** 24, 2 ** 16, 2 ** 8, 1], tf.int64), 1)
    return width_height[0] * width_height[1]


def export(cell, stop_rule, out_dir, version=1, max_steps=unroll.DEFAULT_MAX_STEPS,
           color_mode="per_channel", max_pixels=DEFAULT_MAX_PIXELS):
    """Writes OUT_DIR/VERSION as a SavedModel with the three signatures; returns its path.

    Built with Keras' ExportArchive, which saves each Keras 3 variable once (a plain
    tf.saved_model.save of the model saves two handles per variable, and the session-based
    loader of TF Serving and saved_model_cli then finds one of them uninitialised).
    """
    channels = int(cell.input_shape[-1])
    loop = _Loop(cell, stop_rule, max_steps, color_mode, channels, max_pixels)
    archive = keras.export.ExportArchive()
    archive.track(cell)
    if isinstance(stop_rule, tf.Module):  # a learned policy brings its own variables
        archive.track(stop_rule)
    archive.add_endpoint("serving_default", loop.restore_float,
                         [tf.TensorSpec(None, tf.float32, name="images")])
    archive.add_endpoint("restore_uint8", loop.restore_uint8,
                         [tf.TensorSpec(None, tf.uint8, name="images")])
    archive.add_endpoint("restore_bytes", loop.restore_bytes,
                         [tf.TensorSpec([], tf.string, name="image_bytes")])
    path = os.path.join(out_dir, str(version))
    archive.write_out(path, verbose=False)
    return path
