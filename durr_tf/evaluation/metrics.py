"""PSNR and SSIM computed the way the restoration literature does (BasicSR's conventions).

Images are float in [0,1]; both are clipped and quantised to 8 bits before comparing, an
optional border is cropped, and a set's score is the mean of per-image scores. PSNR of two
identical images is inf. Color images are compared on all channels; the JPEG benchmark compares
the Y channel (data.color.rgb_to_y), which callers extract first.
"""

import numpy as np

from data.images import to_8bit


def quantize(image):
    """Clip to [0,1] and round to the 0–255 grid, as saving to an 8-bit file would."""
    return to_8bit(np.asarray(image, dtype=np.float64)).astype(np.float64)


def _crop(image, border):
    return image[border:-border, border:-border] if border else image


def psnr(restored, clean, border=0):
    """PSNR in dB of one [H,W,C] image against its clean version, 8-bit peak."""
    a = _crop(quantize(restored), border)
    b = _crop(quantize(clean), border)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def mean_psnr(restored, clean, border=0):
    """Mean of per-image PSNR over a batch [B,H,W,C] (never PSNR of the batch as one image)."""
    return float(np.mean([psnr(r, c, border) for r, c in zip(restored, clean)]))


def _gaussian_window(size=11, sigma=1.5):
    x = np.arange(size) - size // 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(image, window):
    """Separable 'valid' correlation of a 2-D array with a 1-D window along both axes."""
    size = len(window)
    rows = np.lib.stride_tricks.sliding_window_view(image, size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def _ssim_channel(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    window = _gaussian_window()
    mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
    var_a = _filter_valid(a * a, window) - mu_a ** 2
    var_b = _filter_valid(b * b, window) - mu_b ** 2
    cov = _filter_valid(a * b, window) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(restored, clean, border=0):
    """SSIM (Wang et al. 2004: 11×11 Gaussian window, σ=1.5, 8-bit constants), mean over channels."""
    a = _crop(quantize(restored), border)
    b = _crop(quantize(clean), border)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[:2]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[-1])]))
