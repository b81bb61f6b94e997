import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from durr_tf.evaluation import metrics
from tests.conftest import synthetic_gray


def _pair(seed=0, shape=(40, 50)):
    clean = synthetic_gray(*shape, seed=seed).astype(np.float32)[..., None] / 255
    noisy = clean + np.random.default_rng(seed).normal(0, 0.08, clean.shape).astype(np.float32)
    return noisy, clean


def test_psnr_matches_scikit_image_on_quantised_images():
    noisy, clean = _pair()
    reference = peak_signal_noise_ratio(metrics.quantize(clean), metrics.quantize(noisy),
                                        data_range=255)
    assert metrics.psnr(noisy, clean) == pytest.approx(reference, abs=1e-9)


def test_psnr_of_identical_images_is_inf_and_border_crop_applies():
    _, clean = _pair()
    assert metrics.psnr(clean, clean) == float("inf")
    damaged = clean.copy()
    damaged[:2] = 0  # only the border differs
    assert metrics.psnr(damaged, clean, border=2) == float("inf")


def test_mean_psnr_is_the_mean_of_per_image_values():
    a, b = _pair(0), _pair(1)
    batch_restored, batch_clean = np.stack([a[0], b[0]]), np.stack([a[1], b[1]])
    expected = (metrics.psnr(*a) + metrics.psnr(*b)) / 2
    assert metrics.mean_psnr(batch_restored, batch_clean) == pytest.approx(expected)


def test_ssim_matches_scikit_image_gaussian_ssim():
    noisy, clean = _pair(shape=(60, 70))
    reference = structural_similarity(
        metrics.quantize(clean)[..., 0], metrics.quantize(noisy)[..., 0], data_range=255,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert metrics.ssim(noisy, clean) == pytest.approx(reference, abs=1e-6)
    assert metrics.ssim(clean, clean) == pytest.approx(1.0)
