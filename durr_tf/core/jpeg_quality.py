"""A no-reference JPEG quality estimate from blockiness, for the blind deblocking stop rule.

Blockiness is the mean absolute step across the 8×8 block boundaries of the JPEG grid divided
by the mean step everywhere else: about 1 for a clean image, rising as the quality factor
falls. The ratio ignores gain and offset, so it reads the same on the studio-swing Y that
restore computes from a decoded color JPEG. `BLOCKINESS_TO_QUALITY` is its median over the
training set at each QF, measured by

    python -m durr_tf.tools.jpeg_quality --set Train400 --out docs/results/jpeg_blockiness.json

(PIL JPEG of the 8-bit Y channel, as in evaluation). Single images scatter around the median
(at QF 10, 80% of Train400 lie in 1.8–3.2), so the estimate is rough; the refined map it feeds
changes N by one step per ~5 QF.
"""


import numpy as np
import tensorflow as tf

from data import degradations
from durr_tf.core import tasks

# (median blockiness, QF) on Train400; see the module docstring for the command.
BLOCKINESS_TO_QUALITY = ((1.254, 60.0), (1.313, 50.0), (1.385, 40.0), (1.435, 35.0),
                         (1.495, 30.0), (1.583, 25.0), (1.703, 20.0), (1.892, 15.0),
                         (2.276, 10.0), (3.539, 5.0))


def blockiness(x):
    """Boundary-to-interior ratio of absolute pixel steps, per image [B] of [B,H,W,C]."""
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.cast(tf.shape(x), tf.float32)
    # Summed over the other axes: [B, W-1] steps from column j to j+1, each a sum of H·C
    # steps, and [B, H-1] steps from row i to i+1, each a sum of W·C.
    across_columns = tf.reduce_sum(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 3])
    across_rows = tf.reduce_sum(tf.abs(x[:, 1:] - x[:, :-1]), axis=[2, 3])

    def split(steps, steps_per_entry):  # steps from pixel 8k+7 to 8k+8 cross a block boundary
        on_boundary = tf.cast(tf.equal(tf.range(tf.shape(steps)[1]) % 8, 7), tf.float32)
        boundary = tf.reduce_sum(steps * on_boundary, axis=1)
        boundary_count = steps_per_entry * tf.reduce_sum(on_boundary)
        interior_count = steps_per_entry * tf.reduce_sum(1.0 - on_boundary)
        return boundary, tf.reduce_sum(steps, axis=1) - boundary, boundary_count, interior_count

    column_split = split(across_columns, shape[1] * shape[3])
    row_split = split(across_rows, shape[2] * shape[3])
    boundary, interior, boundary_count, interior_count = (
        a + b for a, b in zip(column_split, row_split))
    boundary = tf.math.divide_no_nan(boundary, boundary_count)
    interior = tf.math.divide_no_nan(interior, interior_count)
    return tf.where(interior > 0, tf.math.divide_no_nan(boundary, interior),
                    tf.ones_like(boundary))


def estimate_quality(x):
    """Estimated JPEG quality factor per image [B], from `BLOCKINESS_TO_QUALITY`.

    Piecewise linear between the table's points and clamped to its ends (QF 5–60).
    """
    ratios = tf.constant([r for r, _ in BLOCKINESS_TO_QUALITY], tf.float32)
    qualities = tf.constant([q for _, q in BLOCKINESS_TO_QUALITY], tf.float32)
    ratio = tf.clip_by_value(blockiness(x), ratios[0], ratios[-1])
    segment = tf.clip_by_value(tf.searchsorted(ratios, ratio, side="right") - 1, 0,
                               len(BLOCKINESS_TO_QUALITY) - 2)
    r0, r1 = tf.gather(ratios, segment), tf.gather(ratios, segment + 1)
    q0, q1 = tf.gather(qualities, segment), tf.gather(qualities, segment + 1)
    return q0 + (ratio - r0) * (q1 - q0) / (r1 - r0)


def calibrate(files, qualities):
    """{QF: (median, 10th, 90th percentile) blockiness} over the files, JPEG made by PIL."""
    task = tasks.get("deblock")
    cleans = [task.read_clean(path) for path in files]
    table = {}
    for quality in qualities:
        values = [float(blockiness(degradations.jpeg_pil(clean, quality)[None])[0])
                  for clean in cleans]
        table[quality] = tuple(float(v) for v in np.percentile(values, [50, 10, 90]))
    return table
