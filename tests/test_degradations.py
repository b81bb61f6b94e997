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
