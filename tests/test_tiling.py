import numpy as np
import pytest

from durr_tf.evaluation import metrics
from durr_tf.core import restorer_io, stop_rules, tiling, unroll
from durr_tf.inference.restorer import Restorer
from tests.conftest import synthetic_gray


@pytest.fixture(scope="module")
def cell():
    return restorer_io.load_restorer("denoise")[0]  # trained weights: a zero-initialised cell is flat


def _noisy(height, width, seed=0):
    clean = synthetic_gray(height, width).astype(np.float32) / 255.0
    noise = np.random.default_rng(seed).normal(0, 25 / 255, clean.shape).astype(np.float32)
    return (clean + noise)[None, ..., None]


def test_a_tiled_step_equals_the_whole_step(cell):
    x = _noisy(150, 170)
    whole = unroll.Stepper(cell)(x).numpy()
    tiled = tiling.TiledStepper(cell, tile=64, margin=32)(x).numpy()
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    seams = tiling.TiledStepper(cell, tile=64, margin=4)(x).numpy()  # context too narrow
    assert np.abs(seams - whole).max() > 1e-3


def test_tiled_restore_stops_like_the_loop(cell):
    x = np.concatenate([_noisy(100, 90, 1), _noisy(100, 90, 2) * 0.5 + 0.25])
    for rule in (stop_rules.FixedSteps(3), stop_rules.EstimatedLevelRule()):
        whole, whole_steps, _ = unroll.restore(cell, x, rule, 12)
        tiled, tiled_steps = tiling.TiledRestore(cell, rule, 12, tile=32)(x)
        np.testing.assert_array_equal(tiled_steps.numpy(), whole_steps.numpy())
        np.testing.assert_allclose(tiled.numpy(), whole.numpy(), atol=1e-4)


def test_restorer_tiles_large_images_without_seams(cell):
    image = _noisy(200, 260)[0]
    untiled, steps = Restorer(cell, stop_rules.EstimatedLevelRule())(image)
    tiled, tiled_steps = Restorer(cell, stop_rules.EstimatedLevelRule(), tile=64)(image)
    assert metrics.psnr(tiled, untiled) > 60.0  # identical up to float rounding
    assert list(tiled_steps) == list(steps)


def test_tile_and_margin_must_follow_the_stride():
    with pytest.raises(ValueError, match="multiples of 4"):
        tiling.TiledStepper(lambda v: v, tile=30)
