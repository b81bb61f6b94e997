import numpy as np
import pytest
import tensorflow as tf

from durr_tf.core import unet


def test_parameter_count_is_the_papers_order():
    cell = unet.build_unet()
    assert cell.count_params() == 174_577  # the paper: about 1.8e5
    assert unet.build_unet(channels=3).count_params() > cell.count_params()


def _random_cell():
    """A U-Net with random weights: the shipped initialisation zeroes the output layer, so the
    output of a fresh cell is 0 whatever the input."""
    cell = unet.build_unet()
    for layer in cell.layers:
        for weight in layer.weights:
            weight.assign(tf.random.normal(weight.shape, stddev=0.2, seed=3))
    return cell


@pytest.mark.parametrize("height, width", [(7, 5), (1, 1), (3, 2000), (321, 481), (64, 64)])
def test_any_size_in_same_size_out(height, width):
    """Also below the stride (padded, then cropped back), each image on its own in a batch."""
    cell = _random_cell()
    x = tf.random.uniform([2, height, width, 1], seed=1)
    out = cell(x).numpy()
    assert out.shape == (2, height, width, 1)
    assert np.all(np.isfinite(out)) and np.any(out != 0)
    np.testing.assert_allclose(cell(x[1:]).numpy()[0], out[1], atol=1e-4)


def test_padding_does_not_leak_between_crop_and_image():
    """The cropped output of an odd-sized image equals the top-left of its padded run."""
    cell = _random_cell()
    x = tf.random.uniform([1, 13, 9, 1], seed=2)
    padded = tf.pad(x, [[0, 0], [0, 3], [0, 3], [0, 0]], mode="REFLECT")
    np.testing.assert_allclose(cell(x).numpy(), cell(padded).numpy()[:, :13, :9], atol=1e-5)


def test_mixed_bfloat16_keeps_float32_output():
    cell = unet.build_unet(dtype_policy="mixed_bfloat16")
    out = cell(tf.zeros([1, 8, 8, 1]))
    assert out.dtype == tf.float32
    assert cell.get_layer("enc1_a").compute_dtype == "bfloat16"
