import numpy as np
import pytest
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


def test_tensorflow_io_y_truncates_where_matlab_rounds():
    """Why evaluation and training use data.color: tfio's uint8 Y is the formula floored."""
    tfio = pytest.importorskip("tensorflow_io")
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tfio_y = tfio.experimental.color.rgb_to_ycbcr(tf.constant(rgb)).numpy()[..., 0].astype(int)
    exact_y = color.rgb_to_y(rgb / 255.0)[..., 0] * 255
    assert np.all(np.abs(tfio_y - exact_y) < 1.0)  # the same formula, within one level
    assert np.mean(tfio_y == np.floor(exact_y)) > 0.95
    assert np.mean(tfio_y != np.round(exact_y)) > 0.3  # but not the rounded Y of MATLAB
