import numpy as np
import pytest
import tensorflow as tf

from data import color
from durr_tf.inference import image_layouts


def _halve(x):
    """A stand-in restorer: halves every pixel and reports 3 steps per input."""
    return x * 0.5, tf.fill([tf.shape(x)[0]], 3)


def _identity(x):
    return x, tf.fill([tf.shape(x)[0]], 1)


def _image(channels, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (5, 7, channels)).astype(np.float32)


def test_gray_goes_through_as_one_plane():
    image = _image(1)
    restored, steps = image_layouts.restore_image(_halve, image, 1, "per_channel")
    np.testing.assert_allclose(restored, image * 0.5, atol=1e-7)
    assert list(steps.numpy()) == [3]


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_carried_over_untouched(channels):
    image = _image(channels)
    restored, _ = image_layouts.restore_image(_halve, image, 1, "per_channel")
    np.testing.assert_array_equal(restored[..., -1], image[..., -1])
    np.testing.assert_allclose(restored[..., :-1], image[..., :-1] * 0.5, atol=1e-7)


def test_per_channel_restores_each_rgb_plane_as_gray():
    image = _image(3)
    restored, steps = image_layouts.restore_image(_halve, image, 1, "per_channel")
    np.testing.assert_allclose(restored, image * 0.5, atol=1e-7)
    assert list(steps.numpy()) == [3, 3, 3]


def test_luma_changes_only_y_and_keeps_chroma():
    image = _image(3)
    unchanged, _ = image_layouts.restore_image(_identity, image, 1, "luma")
    np.testing.assert_allclose(unchanged, image, atol=1e-5)  # YCbCr round trip
    restored, steps = image_layouts.restore_image(_halve, image, 1, "luma")
    before, after = color.rgb_to_ycbcr(image), color.rgb_to_ycbcr(restored.numpy())
    np.testing.assert_allclose(after[..., 0], before[..., 0] * 0.5, atol=1e-5)
    np.testing.assert_allclose(after[..., 1:], before[..., 1:], atol=1e-5)
    assert list(steps.numpy()) == [3]


def test_color_model_restores_gray_as_rgb():
    restored, _ = image_layouts.restore_image(_halve, _image(1), 3, "per_channel")
    assert restored.shape == (5, 7, 3)


def test_unknown_color_mode_is_refused():
    with pytest.raises(ValueError, match="color mode"):
        image_layouts.restore_image(_halve, _image(3), 1, "chroma")
