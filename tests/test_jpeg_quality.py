import numpy as np
import pytest
import tensorflow as tf

from data import degradations
from durr_tf.core import jpeg_quality, stop_rules


def _photo_like(seed=0, size=96):
    """Smooth shading plus a few hard edges: blocky under JPEG like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.4 + 0.3 * np.sin(6 * xx + rng.uniform(0, 3)) * np.cos(4 * yy)
    image += 0.2 * (xx + 0.5 * yy > rng.uniform(0.4, 0.8))
    image += rng.normal(0, 0.02, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)[..., None]


def test_blockiness_rises_as_quality_falls():
    clean = _photo_like()
    ratios = [float(jpeg_quality.blockiness(degradations.jpeg_pil(clean, q)[None])[0])
              for q in (60, 30, 10, 5)]
    assert ratios == sorted(ratios) and ratios[-1] > 1.5 * ratios[0]
    assert float(jpeg_quality.blockiness(clean[None])[0]) == pytest.approx(1.0, abs=0.1)


def test_blockiness_ignores_gain_and_offset():
    """Studio-swing Y (16 + 219/255 x) reads the same as full-range gray."""
    jpeg = degradations.jpeg_pil(_photo_like(1), 20)[None]
    studio = 16 / 255 + 219 / 255 * jpeg
    np.testing.assert_allclose(jpeg_quality.blockiness(studio), jpeg_quality.blockiness(jpeg),
                               rtol=1e-4)


def test_quality_estimate_orders_images_and_stays_in_the_table():
    clean = _photo_like(2)
    batch = np.stack([degradations.jpeg_pil(clean, q) for q in (10, 40)])
    low, high = jpeg_quality.estimate_quality(batch).numpy()
    assert 5 <= low < high <= 60
    flat = jpeg_quality.estimate_quality(tf.ones([2, 1, 1, 1])).numpy()
    np.testing.assert_array_equal(flat, [60.0, 60.0])  # no blocks seen: the highest quality


def test_blind_deblocking_rule_unrolls_longer_for_lower_quality():
    clean = _photo_like(3)
    batch = tf.constant(np.stack([degradations.jpeg_pil(clean, q) for q in (5, 60)]))
    rule = stop_rules.parse_stop_rule("estimate", "deblock")
    steps = rule.initial_state(batch).numpy()
    assert steps[0] > steps[1] >= 1


def test_the_quality_factor_of_a_libjpeg_image_is_read_off_its_coefficients():
    clean = _photo_like(4, size=128)
    qualities = (5, 12, 20, 33, 45, 60, 80)
    batch = np.stack([degradations.jpeg_pil(clean, q) for q in qualities])
    np.testing.assert_array_equal(jpeg_quality.read_quality(batch).numpy(), qualities)
    # 50 and 51 quantize these frequencies as 49 does: the lowest of equal tables
    assert jpeg_quality.ijg_steps(50) == jpeg_quality.ijg_steps(49) != jpeg_quality.ijg_steps(48)
    np.testing.assert_array_equal(
        jpeg_quality.read_quality(degradations.jpeg_pil(clean, 50)[None]).numpy(), [49])


def test_a_few_blocks_spread_over_the_image_read_what_all_of_them_read():
    clean = _photo_like(7, size=256)  # 1,024 blocks
    qualities = (8, 25, 55)
    batch = np.stack([degradations.jpeg_pil(clean, q) for q in qualities] + [clean])
    mosaic = jpeg_quality.spread_blocks(batch, 64)  # every 4th block row and column
    assert mosaic.shape == (4, 64, 64, 1)
    np.testing.assert_array_equal(mosaic[:, 8:16, 8:16], batch[:, 32:40, 32:40])
    np.testing.assert_array_equal(jpeg_quality.read_quality(batch, blocks=64).numpy(),
                                  [*qualities, 0])
    corner = batch[:, :64, :64]  # fewer blocks than asked for: all of them are read
    np.testing.assert_array_equal(jpeg_quality.read_quality(corner, blocks=256),
                                  jpeg_quality.read_quality(corner))


def test_an_image_on_no_quantization_table_reads_zero():
    clean = _photo_like(5, size=128)
    jpeg = degradations.jpeg_pil(clean, 20)
    noisy = np.clip(jpeg + np.random.default_rng(0).normal(0, 25 / 255, jpeg.shape), 0, 1)
    off_grid = degradations.jpeg_pil(clean, 20)[3:115, 5:117]  # a crop off the 8×8 grid
    batch = np.stack([clean, noisy.astype(np.float32), jpeg])
    np.testing.assert_array_equal(jpeg_quality.read_quality(batch).numpy(), [0, 0, 20])
    np.testing.assert_array_equal(jpeg_quality.read_quality(off_grid[None]).numpy(), [0])
    tiny = np.stack([jpeg[:4, :5], clean[:4, :5]])  # under one 8×8 block
    np.testing.assert_array_equal(jpeg_quality.read_quality(tiny).numpy(), [0, 0])


def test_the_read_level_falls_back_to_blockiness_where_no_table_fits():
    clean = _photo_like(6, size=128)
    batch = np.stack([degradations.jpeg_pil(clean, 20)[:120, :120],
                      degradations.jpeg_pil(clean, 20)[3:123, 5:125]])
    read = stop_rules.read_level("deblock", batch).numpy()
    assert read[0] == 20.0
    assert read[1] == pytest.approx(float(jpeg_quality.estimate_quality(batch[1:])[0]))
    rule = stop_rules.ReadLevelRule("deblock", ((10.0, 12), (30.0, 4)))
    steps = rule.initial_state(np.stack([degradations.jpeg_pil(clean, q) for q in (10, 20, 30)]))
    np.testing.assert_array_equal(steps.numpy(), [12, 8, 4])


def test_calibration_command_on_tiny_data(image_dir, tmp_path):
    import json

    from tests.conftest import run_in_process

    result = run_in_process("durr_tf.tools.jpeg_quality", "--set", image_dir, "--qf", "10,40",
                            "--limit", 2, "--out", tmp_path / "b.json")
    assert "| 10 |" in result.stdout
    table = json.load(open(tmp_path / "b.json"))["blockiness"]
    assert table["10"][0] > table["40"][0]
