import numpy as np
import tensorflow as tf

from data import color


def test_y_channel_by_the_matlab_formula():
    rgb = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0]]], np.float64)
    y = color.rgb_to_y(rgb)[..., 0] * 255
    np.testing.assert_allclose(y, [[16.0, 235.0, 16 + 65.481]], atol=1e-9)


def test_ycbcr_round_trip():
    rgb = np.random.default_rng(0).uniform(0, 1, (7, 9, 3))
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-12)


def test_gray_has_neutral_chroma():
    ycbcr = color.rgb_to_ycbcr(np.full((2, 2, 3), 0.4))
    np.testing.assert_allclose(ycbcr[..., 1:] * 255, 128.0, atol=1e-9)


def test_graph_conversions_match_the_numpy_ones():
    rgb = np.random.default_rng(1).uniform(0, 1, (4, 6, 3))
    ycbcr = color.rgb_to_ycbcr_tf(tf.constant(rgb)).numpy()
    np.testing.assert_allclose(ycbcr, color.rgb_to_ycbcr(rgb), atol=1e-12)
    np.testing.assert_allclose(color.ycbcr_to_rgb_tf(tf.constant(ycbcr)).numpy(), rgb, atol=1e-12)


def test_deblocking_y_is_the_formula_rounded_to_8_bits_as_in_matlab():
    """Rounded, not floored (tensorflow-io's uint8 Y floors it): on 8-bit RGB the two differ at
    about half the pixels."""
    from durr_tf.core import tasks

    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    exact = 16 + rgb.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255
    y = tasks.get("deblock").prepare_clean(rgb / 255.0)[..., 0] * 255
    np.testing.assert_allclose(y, np.round(exact), atol=1e-3)
    assert np.mean(np.round(exact) != np.floor(exact)) > 0.3
