"""Restoring images and image files with a restorer and a stop rule (`python -m durr_tf.restore`).

A gray model restores a color photo per channel for denoising and by its Y channel for JPEG
deblocking; alpha is carried over (see `image_layouts`). 16-bit inputs are
restored in float and written back as 16-bit PNG. A folder stands for its image files (the
extensions of `data.sets.IMAGE_EXTENSIONS`) and its other entries are reported; a file given by
name is tried whatever its extension. Outputs go to the folder --out as NAME.png; an input is
never overwritten, an existing output only with --overwrite, and each file is written to a
temporary name first and then renamed. Files that are not images are reported and skipped.
"""

import os

import numpy as np
import tensorflow as tf
from absl import app

from data import sets
from data.images import ImageReadError, read_image, save_image
from durr_tf.inference import image_layouts
from durr_tf.core import tiling, unroll


class Restorer:
    """A restorer with a stop rule for any image size and channel layout.

    `color_mode` says how a 1-channel model restores an RGB image (see `image_layouts`);
    images over `tile`² pixels are restored tile by tile with one stop decision (`tiling`).
    """

    def __init__(self, cell, rule, max_steps=unroll.DEFAULT_MAX_STEPS, color_mode="per_channel",
                 tile=tiling.TILE):
        self.channels, self.color_mode = int(cell.input_shape[-1]), color_mode
        self._run = tiling.TiledRestore(cell, rule, max_steps, tile)

    def __call__(self, image):
        """Restores one float [H,W,C] image; returns (restored [H,W,C], steps per model input)."""
        restored, steps = image_layouts.restore_image(self._run, image, self.channels,
                                                      self.color_mode)
        return restored.numpy(), steps.numpy()


def output_path(input_path, out_dir):
    stem = os.path.splitext(os.path.basename(input_path))[0]
    return os.path.join(out_dir, stem + ".png")


def collect_inputs(paths, log=print):
    """Expands folders into their image files and logs what else they hold, so that nothing in
    a folder is passed over unsaid; keeps files given by name (even non-images: `read_image`
    judges them by their content)."""
    files = []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        images = sets.image_files(path)
        files.extend(images)
        for name in sorted(os.listdir(path)):
            entry = os.path.join(path, name)
            if name.startswith(".") or entry in images:
                continue
            if os.path.isdir(entry):
                log(f"skipped {entry}: a folder (folders inside an input folder are not "
                    "searched; give it as an input of its own)")
            else:
                log(f"skipped {entry}: not an image file by its extension (images end in "
                    f"{', '.join(sets.IMAGE_EXTENSIONS)}); give it by name to try it anyway")
    return files


def check_out_folder(out_dir):
    """Raises a UsageError that says what is wrong when out_dir, or a folder above it, is an
    existing file: no output could be written there, and the file is left as it is."""
    existing = os.path.abspath(out_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if os.path.isdir(existing):
        return
    if existing == os.path.abspath(out_dir):
        raise app.UsageError(f"--out {out_dir} is a file; --out names the folder to write "
                             "the restored images into (made if missing)")
    raise app.UsageError(f"--out {out_dir} cannot be made: {existing} is a file; --out names "
                         "the folder to write the restored images into")


def decode_ahead(files, max_pixels=None, parallel=2, ahead=2):
    """Yields (image, bits, error) per file in order, decoded ahead in tf.data's threads.

    A file that cannot be read yields (None, 0, message) instead of stopping the stream.
    """
    kwargs = {"max_pixels": max_pixels} if max_pixels else {}

    def read(path):
        try:
            image, bits = read_image(path.decode(), **kwargs)
            return image.astype(np.float32), np.int32(bits), b""
        except (ImageReadError, OSError) as error:
            return np.zeros([0, 0, 0], np.float32), np.int32(0), str(error).encode()

    data = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string)).map(
        lambda path: tf.numpy_function(read, [path], (tf.float32, tf.int32, tf.string)),
        num_parallel_calls=parallel, deterministic=True).prefetch(ahead)
    for image, bits, error in data.as_numpy_iterator():
        yield (None, 0, error.decode()) if error else (image, int(bits), "")


def restore_files(restorer, files, out_dir, overwrite=False, max_pixels=None, log=print):
    """Restores each file into out_dir; returns {path: error message} for the ones that failed."""
    failures, written = {}, set()
    inputs = {os.path.realpath(p) for p in files}
    for path, (image, bits, read_error) in zip(files, decode_ahead(files, max_pixels)):
        target = output_path(path, out_dir)
        try:
            if read_error:
                raise ValueError(read_error)  # names the file already
            if os.path.realpath(target) in inputs:
                raise ValueError(f"output {target} would overwrite an input; choose another --out")
            if target in written:
                raise FileExistsError(f"{target} was already written for another input of the "
                                      "same name; restore them into different folders")
            if os.path.exists(target) and not overwrite:
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
            restored, steps = restorer(image)
            save_image(target, restored, bits=bits)
            written.add(target)
            log(f"{path} -> {target} ({image.shape[1]}x{image.shape[0]}, "
                f"steps {'/'.join(str(s) for s in steps)})")
        except (ImageReadError, ValueError, FileExistsError, OSError,
                tf.errors.OpError) as error:
            failures[path] = str(error)
            log(f"skipped {path}: {error}")
    return failures
