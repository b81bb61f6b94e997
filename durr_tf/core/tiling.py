"""Restoring images too large for memory: every Euler step is computed tile by tile.

Each tile is extended by a margin wider than the U-Net's receptive field (about 18 pixels) and
starts on a multiple of the U-Net's stride, so its core is what the whole image would give:
the result has no seams and matches an untiled restore up to float rounding. The stop rule sees
the whole iterate after each step, so an image gets one stop decision, not one per tile. Peak
memory is that of one tile plus a few copies of the image, except under the learned stop: its
first layer, on the whole iterate, holds 48 maps at half resolution (12 copies of the image).
"""

import numpy as np
import tensorflow as tf

from durr_tf.core import unet, unroll

MARGIN = 32  # pixels of context around a tile; > the receptive field radius, a multiple of 4
TILE = 1024  # core tile side; images up to TILE × TILE pixels are restored whole


class TiledStepper(unroll.Stepper):
    """A `unroll.Stepper` whose every step is computed tile by tile: `tile`² cores, each with
    a `margin` of context, so a step needs the memory of one tile, not of the whole image."""

    def __init__(self, cell, tile=TILE, margin=MARGIN, dt=unroll.DT):
        if tile % unet.STRIDE or margin % unet.STRIDE:
            raise ValueError(f"tile ({tile}) and margin ({margin}) must be multiples of "
                             f"{unet.STRIDE}, the U-Net's stride")
        super().__init__(cell, dt)
        self.tile, self.margin = tile, margin

    def __call__(self, x):
        x = np.asarray(x, np.float32)
        tile, margin = self.tile, self.margin
        height, width = x.shape[1:3]
        out = np.empty_like(x)
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                y0, x0 = max(0, top - margin), max(0, left - margin)
                y1, x1 = min(height, top + tile + margin), min(width, left + tile + margin)
                piece = super().__call__(x[:, y0:y1, x0:x1]).numpy()
                core_h, core_w = min(tile, height - top), min(tile, width - left)
                out[:, top:top + core_h, left:left + core_w] = piece[
                    :, top - y0:top - y0 + core_h, left - x0:left - x0 + core_w]
        return tf.constant(out)


class TiledRestore:
    """`unroll.restore` for large images: (x [B,H,W,C]) -> (restored, steps [B]).

    Images of at most `tile`² pixels go through the ordinary in-graph loop; larger ones walk a
    `TiledStepper` trajectory, with the stop rule applied to the whole iterate after each step
    and stopped images held fixed, up to `max_steps`.
    """

    def __init__(self, cell, rule, max_steps=unroll.DEFAULT_MAX_STEPS, tile=TILE,
                 margin=MARGIN):
        self.rule, self.max_steps, self.tile = rule, max_steps, tile
        channels = int(cell.input_shape[-1])
        spec = [tf.TensorSpec([None, None, None, channels], tf.float32)]
        self._whole = tf.function(lambda x: unroll.restore(cell, x, rule, max_steps)[:2],
                                  input_signature=spec)
        self._stepper = TiledStepper(cell, tile, margin)

    def __call__(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        if int(tf.shape(x)[1]) * int(tf.shape(x)[2]) <= self.tile * self.tile:
            return self._whole(x)
        state = self.rule.initial_state(x)
        done = np.zeros(int(tf.shape(x)[0]), bool)
        steps = np.zeros(len(done), np.int32)
        restored = x
        for n, iterate in enumerate(self._stepper.trajectory(x, self.max_steps)):
            # The trajectory steps every image (an image's step does not depend on the
            # others); one that stopped keeps the iterate it stopped at.
            restored = tf.where(done[:, None, None, None], restored, iterate)
            steps[~done] = n
            stop, state = self.rule(tf.constant(n), restored, state)
            done = done | stop.numpy()
            if done.all():
                break
        return restored, tf.constant(steps)
