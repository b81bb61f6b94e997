"""No-reference JPEG quality readings for the deblocking stop rules: an estimate from
blockiness (any JPEG), and the exact quality factor of a libjpeg image read off its DCT
coefficients (`read_quality`).

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


# The IJG (libjpeg) luminance quantization table for quality 50 (JPEG standard, Annex K),
# row-major over the 8×8 DCT frequencies; libjpeg scales it for every other quality.
IJG_LUMINANCE = ((16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55),
                 (14, 13, 16, 24, 40, 57, 69, 56), (14, 17, 22, 29, 51, 87, 80, 62),
                 (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
                 (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99))
# The ten lowest AC frequencies in zigzag order: quantized coarsely enough at every quality a
# deblocker meets to show the lattice, and seldom all zero.
READ_FREQUENCIES = ((0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0),
                    (4, 0))


def ijg_steps(quality):
    """The quantization steps libjpeg uses at `quality` (1–100, baseline) for READ_FREQUENCIES."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((IJG_LUMINANCE[u][v] * scale + 50) // 100, 1), 255)
            for u, v in READ_FREQUENCIES]


def _dct_kernel():
    """[8, 8, 1, F] the orthonormal 8×8 DCT-II basis of each READ_FREQUENCIES entry: JPEG's
    transform, so that a stride-8 convolution gives the coefficients libjpeg quantized."""
    k = np.arange(8)
    basis = np.sqrt(np.where(k == 0, 1.0, 2.0) / 8)[:, None] * np.cos(
        (2 * k[None] + 1) * k[:, None] * np.pi / 16)
    return np.stack([np.outer(basis[u], basis[v]) for u, v in READ_FREQUENCIES],
                    axis=-1)[:, :, None].astype(np.float32)


def spread_blocks(x, blocks):
    """The 8×8 blocks of images [B,H,W,C] (H, W ≥ 8) on every k-th block row and column, as a
    mosaic [B, 8·rows, 8·columns, C] on the same 8×8 grid, with k = ⌈√(blocks in the image /
    `blocks`)⌉: about `blocks` of them or fewer, and all of them where there are no more."""
    shape = tf.shape(x)
    rows, columns = shape[1] // 8, shape[2] // 8
    stride = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(rows * columns, tf.float32) / blocks)),
                     tf.int32)  # at least 1: an image holds a block
    grid = tf.reshape(x[:, :8 * rows, :8 * columns],
                      [shape[0], rows, 8, columns, 8, shape[3]])[:, ::stride, :, ::stride]
    kept = tf.shape(grid)
    return tf.reshape(grid, [shape[0], 8 * kept[1], 8 * kept[3], shape[3]])


def read_quality(x, blocks=None):
    """The quality factor (1–100) of the libjpeg quantization table that the 8×8 DCT coefficients
    of each image [B,H,W,1] in [0, 1] sit on, and 0 where they sit on none [B]. With `blocks`,
    it reads about that many of the 8×8 blocks, those on every k-th block row and column
    (`spread_blocks`), which bounds the cost on a large image.

    Decoding a JPEG leaves each coefficient near a multiple of its quantization step (off by the
    pixels' rounding only), so of the candidate tables the one whose steps the coefficients fit
    best, by the mean of cos(2π·c/q), is the encoder's. A finer table whose steps divide the
    true ones fits equally well, so ties go to the coarser table (the lower quality); qualities
    whose tables agree at READ_FREQUENCIES read as the lowest of them (50 and 51 read 49). Where
    no table fits (an image never JPEG-compressed, noise above a few levels on top, a crop off
    the 8×8 grid, another encoder's table, a flat or tiny image), the coarsest table (quality 1,
    steps of 255) fits best, its cosines being near 1 for any coefficients this small: it stands
    for no table and reads 0. The studio-swing Y that restore computes from a color JPEG's RGB
    is the JPEG's own Y scaled by 219/255, so it sits on steps scaled likewise and reads a finer
    table: PIL's qualities 10, 20, 30 and 40 read 12, 23, 35 and 46 (16 CBSD432 photos).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.shape(x)
    # An image under 8×8 holds no block: it is read as a flat block, which fits every table.
    x = tf.cond(tf.reduce_all(shape[1:3] >= 8), lambda: x,
                lambda: tf.zeros(tf.concat([shape[:1], [8, 8], shape[3:]], 0)))
    if blocks:
        x = spread_blocks(x, blocks)
    qualities = np.arange(1, 101)
    steps = tf.constant([ijg_steps(int(q)) for q in qualities], tf.float32)  # [Q, F]
    coefficients = tf.nn.conv2d(255.0 * x, _dct_kernel(), 8, "VALID")
    coefficients = tf.reshape(coefficients, [shape[0], -1, 1, len(READ_FREQUENCIES)])
    fit = tf.reduce_mean(tf.cos(2.0 * np.pi * coefficients / steps), axis=[1, 3])  # [B, Q]
    quality = tf.gather(tf.constant(qualities, tf.float32),
                        tf.argmax(fit, axis=1, output_type=tf.int32))  # ties: the first
    return tf.where(quality > 1, quality, tf.zeros_like(quality))


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
