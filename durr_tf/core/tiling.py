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


def tiled_euler_step(step, x, tile=TILE, margin=MARGIN):
    """One Euler step of [B,H,W,C] `x` (numpy) computed tile by tile with `step` (a function
    [B,h,w,C] -> [B,h,w,C]); returns numpy."""
    if tile % unet.STRIDE or margin % unet.STRIDE:
        raise ValueError(f"tile ({tile}) and margin ({margin}) must be multiples of "
                         f"{unet.STRIDE}, the U-Net's stride")
    height, width = x.shape[1:3]
    out = np.empty_like(x)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            y0, x0 = max(0, top - margin), max(0, left - margin)
            y1, x1 = min(height, top + tile + margin), min(width, left + tile + margin)
            piece = step(tf.constant(x[:, y0:y1, x0:x1])).numpy()
            core_h, core_w = min(tile, height - top), min(tile, width - left)
            out[:, top:top + core_h, left:left + core_w] = piece[
                :, top - y0:top - y0 + core_h, left - x0:left - x0 + core_w]
    return out


class TiledRestore:
    """`unroll.restore` for large images: (x [B,H,W,C]) -> (restored, steps [B]).

    Images of at most `tile`² pixels go through the ordinary in-graph loop; larger ones are
    stepped tile by tile, with the stop rule applied to the whole iterate after each step and
    stopped images held fixed, up to `max_steps`.
    """

    def __init__(self, cell, rule, max_steps=unroll.DEFAULT_MAX_STEPS, tile=TILE,
                 margin=MARGIN):
        self.rule, self.max_steps, self.tile, self.margin = rule, max_steps, tile, margin
        channels = int(cell.input_shape[-1])
        spec = [tf.TensorSpec([None, None, None, channels], tf.float32)]
        self._whole = tf.function(lambda x: unroll.restore(cell, x, rule, max_steps)[:2],
                                  input_signature=spec)
        self._step = tf.function(lambda x: unroll.euler_step(cell, x), input_signature=spec)

    def __call__(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        if int(tf.shape(x)[1]) * int(tf.shape(x)[2]) <= self.tile * self.tile:
            return self._whole(x)
        state = self.rule.initial_state(x)
        done, state = self.rule(tf.constant(0), x, state)
        done = done.numpy()
        steps = np.zeros(len(done), np.int32)
        iterate = x.numpy()
        for n in range(1, self.max_steps + 1):
            if done.all():
                break
            moved = tiled_euler_step(self._step, iterate, self.tile, self.margin)
            iterate = np.where(done[:, None, None, None], iterate, moved)
            steps = np.where(done, steps, n).astype(np.int32)
            stop, state = self.rule(tf.constant(n), tf.constant(iterate), state)
            done = done | stop.numpy()
        return tf.constant(iterate), tf.constant(steps)
