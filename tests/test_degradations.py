import numpy as np

from data import degradations


def test_same_seed_same_noise_and_other_seed_differs():
    clean = np.full((1, 32, 32, 1), 0.5, np.float32)
    a = degradations.add_gaussian_noise(clean, 25, (1, 2)).numpy()
    b = degradations.add_gaussian_noise(clean, 25, (1, 2)).numpy()
    c = degradations.add_gaussian_noise(clean, 25, (1, 3)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_noise_has_sigma_on_255_scale_and_is_not_clipped():
    clean = np.full((256, 256, 1), 0.95, np.float32)
    noisy = degradations.add_gaussian_noise(clean, 50, 7).numpy()
    assert abs(np.std(noisy - clean) * 255 - 50) < 1.0
    assert noisy.max() > 1.0  # the usual protocol keeps out-of-range values


def test_per_image_sigma_in_a_batch():
    clean = np.zeros((2, 128, 128, 1), np.float32)
    noisy = degradations.add_gaussian_noise(clean, np.array([10.0, 60.0]), 3).numpy()
    stds = noisy.reshape(2, -1).std(axis=1) * 255
    np.testing.assert_allclose(stds, [10, 60], rtol=0.05)


def test_sampler_draws_training_levels_deterministically():
    draws = [float(degradations.sample_noise_level((0, i))) for i in range(200)]
    assert set(draws) == set(degradations.NOISE_LEVELS_TRAIN)
    assert draws == [float(degradations.sample_noise_level((0, i))) for i in range(200)]


def _photo():
    from tests.conftest import synthetic_gray

    return synthetic_gray(48, 64).astype(np.float32)[..., None] / 255


def test_jpeg_pil_is_pils_encoder_at_each_quality():
    import io

    from PIL import Image

    clean = _photo()
    errors = []
    for quality in (10, 20, 30, 40):
        buffer = io.BytesIO()
        Image.fromarray(np.round(clean[..., 0] * 255).astype(np.uint8)).save(
            buffer, format="JPEG", quality=quality)
        reference = np.asarray(Image.open(buffer), np.float32)[..., None] / 255
        np.testing.assert_array_equal(degradations.jpeg_pil(clean, quality), reference)
        errors.append(np.mean((reference - clean) ** 2))
    assert errors == sorted(errors, reverse=True)  # higher quality, smaller error


def test_tensorflow_jpeg_is_close_to_pil_but_not_identical():
    clean = _photo()
    for quality in (10, 40):
        pil = degradations.jpeg_pil(clean, quality)
        tf_jpeg = degradations.jpeg_tf(clean[None], quality).numpy()[0]
        levels = np.abs(pil - tf_jpeg) * 255
        assert levels.max() <= 2.5  # at most a couple of gray levels apart
        pil_mse, tf_mse = np.mean((pil - clean) ** 2), np.mean((tf_jpeg - clean) ** 2)
        assert abs(10 * np.log10(pil_mse / tf_mse)) < 0.2


def test_jpeg_quality_sampler_covers_the_training_qualities():
    draws = {int(degradations.sample_jpeg_quality((5, i))) for i in range(100)}
    assert draws == set(range(len(degradations.JPEG_QUALITIES_TRAIN)))
