"""Restores image files or folders with a restorer: python -m durr_tf.restore IN... --out DIR.

Gray model on a color photo: for denoising each RGB channel is restored as its own gray image
(Gaussian noise is independent per channel, so this removes chroma noise too, which restoring
only the luminance would leave); for JPEG deblocking only Y is restored and recombined with the
original chroma. An alpha channel is carried over untouched. 16-bit inputs are
restored in float and written back as 16-bit PNG. Outputs go to --out as NAME.png; an input is
never overwritten, an existing output only with --overwrite, and each file is written to a
temporary name first and then renamed. Files that are not images are reported and skipped.
"""

import os
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from data import color, sets
from data.images import ImageReadError, read_image, save_image
from durr_tf import model, policies, tasks, unroll


class Restorer:
    """A restorer with a stop rule, compiled once for any batch and image size.

    `color_mode` says how a 1-channel model restores an RGB image: "per_channel" (each channel
    as a gray image; denoising) or "luma" (only Y of YCbCr, then recombined with the untouched
    chroma; JPEG deblocking, where the artifacts live in Y).
    """

    def __init__(self, cell, rule, max_steps=unroll.DEFAULT_MAX_STEPS, color_mode="per_channel"):
        self.channels = int(cell.input_shape[-1])
        self.color_mode = color_mode
        self._run = tf.function(
            lambda x: unroll.restore(cell, x, rule, max_steps)[:2],
            input_signature=[tf.TensorSpec([None, None, None, self.channels], tf.float32)])

    def _batch(self, rgb_or_gray):
        """The model inputs [B,H,W,channels] for an image, and how to put the result back."""
        if self.channels != 1:
            if rgb_or_gray.shape[-1] != self.channels:
                raise ValueError(f"a {self.channels}-channel model cannot restore a "
                                 f"{rgb_or_gray.shape[-1]}-channel image")
            return rgb_or_gray[None], lambda out: out[0]
        if rgb_or_gray.shape[-1] == 1:
            return rgb_or_gray[None], lambda out: out[0]
        if self.color_mode == "luma":
            ycbcr = color.rgb_to_ycbcr(rgb_or_gray)
            return ycbcr[None, ..., :1], lambda out: color.ycbcr_to_rgb(
                np.concatenate([out[0], ycbcr[..., 1:]], axis=-1))
        return np.moveaxis(rgb_or_gray, -1, 0)[..., None], lambda out: np.moveaxis(
            out[..., 0], 0, -1)

    def __call__(self, image):
        """Restores one float [H,W,C] image; returns (restored [H,W,C], steps per model input)."""
        has_alpha = image.shape[-1] in (2, 4)  # gray+alpha is read as RGBA
        batch, put_back = self._batch(image[..., :-1] if has_alpha else image)
        out, steps = self._run(tf.constant(batch, tf.float32))
        restored = put_back(out.numpy()).astype(np.float32)
        if has_alpha:  # alpha is carried over untouched
            restored = np.concatenate([restored, image[..., -1:]], axis=-1)
        return restored, steps.numpy()


def output_path(input_path, out_dir):
    stem = os.path.splitext(os.path.basename(input_path))[0]
    return os.path.join(out_dir, stem + ".png")


def collect_inputs(paths):
    """Expands folders into their image files; keeps explicit files (even non-images)."""
    files = []
    for path in paths:
        files.extend(sets.image_files(path) if os.path.isdir(path) else [path])
    return files


def restore_files(restorer, files, out_dir, overwrite=False, max_pixels=None, log=print):
    """Restores each file into out_dir; returns {path: error message} for the ones that failed."""
    failures, written = {}, set()
    inputs = {os.path.realpath(p) for p in files}
    for path in files:
        target = output_path(path, out_dir)
        try:
            if os.path.realpath(target) in inputs:
                raise ValueError(f"output {target} would overwrite an input; choose another --out")
            if target in written:
                raise FileExistsError(f"{target} was already written for another input of the "
                                      "same name; restore them into different folders")
            if os.path.exists(target) and not overwrite:
                raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
            kwargs = {"max_pixels": max_pixels} if max_pixels else {}
            image, bits = read_image(path, **kwargs)
            restored, steps = restorer(image)
            save_image(target, restored, bits=bits)
            written.add(target)
            log(f"{path} -> {target} ({image.shape[1]}x{image.shape[0]}, "
                f"steps {'/'.join(str(s) for s in steps)})")
        except (ImageReadError, ValueError, FileExistsError, OSError) as error:
            failures[path] = str(error)
            log(f"skipped {path}: {error}")
    return failures


FLAGS = flags.FLAGS


def define_flags():
    """Declares the command-line flags (only when run as a program, so modules import cleanly)."""
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.")
    flags.DEFINE_string("out", "restored", "Output folder.")
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).")
    flags.DEFINE_string("stop", None, "Stop rule: estimate (blind σ), refined (with --level), "
                        "fixed:N; default: the task's (estimate for denoise, fixed:6 for deblock).")
    flags.DEFINE_float("level", None, "Known degradation level (σ or QF) for --stop refined.")
    flags.DEFINE_integer("max_steps", unroll.DEFAULT_MAX_STEPS, "Hard bound on the unrolling.")
    flags.DEFINE_integer("max_pixels", None, "Refuse images with more pixels than this.")
    flags.DEFINE_bool("overwrite", False, "Replace outputs that already exist.")


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give at least one image file or folder to restore")
    task = tasks.get(FLAGS.task)
    cell, _ = model.load_restorer(FLAGS.restorer or task.name)
    rule = policies.parse_stop_rule(FLAGS.stop or task.default_stop, task.refined_map, FLAGS.level)
    restorer = Restorer(cell, rule, FLAGS.max_steps, task.color_mode)
    files = collect_inputs(argv[1:])
    failures = restore_files(restorer, files, FLAGS.out, FLAGS.overwrite, FLAGS.max_pixels)
    print(f"restored {len(files) - len(failures)} of {len(files)} file(s) into {FLAGS.out}")
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for path, error in failures.items():
            print(f"  {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
