import numpy as np
import pytest
import tensorflow as tf

from durr_tf.core import stop_rules, unroll


def test_refined_map_reproduces_the_papers_points():
    levels = tf.constant([25.0, 35.0, 45.0, 55.0])
    assert list(stop_rules.refined_steps("denoise", levels).numpy()) == [4, 6, 9, 12]
    assert list(stop_rules.refined_steps("deblock", tf.constant([20.0, 30.0])).numpy()) == [6, 4]


def test_refined_map_interpolates_and_extrapolates():
    steps = stop_rules.refined_steps("denoise", tf.constant([30.0, 65.0, 75.0, 5.0])).numpy()
    assert list(steps) == [5, 15, 18, 1]  # slope of the end segments; never below one step
    qf = stop_rules.refined_steps("deblock", tf.constant([10.0, 40.0])).numpy()
    assert list(qf) == [8, 2]


def test_refined_map_of_a_scalar_is_a_scalar():
    assert int(stop_rules.refined_steps("denoise", 45.0)) == 9


def test_noise_estimate_is_close_to_the_true_sigma():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:200, :200]
    clean = (0.5 + 0.2 * np.sin(x / 15.0) * np.cos(y / 20.0))[None, ..., None]
    for sigma in (15, 25, 50, 75):
        noisy = clean + rng.normal(0, sigma / 255, clean.shape)
        estimate = float(stop_rules.estimate_noise_sigma(tf.constant(noisy, tf.float32))[0])
        assert abs(estimate - sigma) < 0.05 * sigma + 1


def test_noise_estimate_of_a_tiny_image_is_zero_not_nan():
    assert float(stop_rules.estimate_noise_sigma(tf.ones([1, 2, 2, 1]))[0]) == 0.0


def test_oracle_picks_the_earliest_best_step():
    table = np.array([[20.0, 20.0], [22.0, 25.0], [22.0, 24.0], [21.0, 25.0]])
    assert list(stop_rules.oracle_steps(table)) == [1, 1]


def test_parse_stop_rule():
    assert isinstance(stop_rules.parse_stop_rule("fixed:7", "denoise"), stop_rules.FixedSteps)
    assert isinstance(stop_rules.parse_stop_rule("estimate", "denoise"), stop_rules.EstimatedLevelRule)
    with pytest.raises(ValueError, match="level"):
        stop_rules.parse_stop_rule("refined", "denoise")
    with pytest.raises(ValueError, match="unknown stop rule"):
        stop_rules.parse_stop_rule("sometimes", "denoise")


def test_handcrafted_is_decorrelation_for_noise_and_blockiness_for_jpeg():
    assert isinstance(stop_rules.parse_stop_rule("handcrafted", "denoise"),
                      stop_rules.DecorrelationRule)
    jpeg_rule = stop_rules.parse_stop_rule("handcrafted", "deblock")
    assert isinstance(jpeg_rule, stop_rules.EstimatedLevelRule) and jpeg_rule.task == "deblock"


def test_learned_without_a_shipped_policy_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(stop_rules.restorer_io, "pretrained_policy",
                        lambda task: str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="agents.train_dqn"):
        stop_rules.parse_stop_rule("learned", "denoise")


def test_decorrelation_rule_stops_one_step_after_the_least_correlated_iterate():
    """Noise is removed until step 5, then signal: the iterate and the removed part are least
    correlated at step 5, and the causal rule sees that at step 6."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:64, :64]
    clean = 0.5 + 0.3 * np.sin(x / 6.0) * np.cos(y / 9.0)
    noise = rng.normal(0, 0.1, clean.shape)
    iterates = [clean + noise * (1 - n / 5) for n in range(6)]
    iterates += [clean * (1 - k / 10) + 0.05 * k for k in range(1, 6)]
    rule = stop_rules.DecorrelationRule()
    x0 = tf.constant(iterates[0][None, ..., None], tf.float32)
    state = rule.initial_state(x0)
    for n, iterate in enumerate(iterates):
        stop, state = rule(tf.constant(n), tf.constant(iterate[None, ..., None], tf.float32), state)
        if bool(stop[0]):
            break
    assert n == 6


def test_decorrelation_stops_a_constant_image_instead_of_running_to_the_limit():
    """A 1-pixel or flat image is its own removed part's constant: correlation 0 at every step."""
    cell = lambda x, training=False: tf.zeros_like(x)  # noqa: E731  (changes nothing)
    for shape in ((1, 1, 1, 1), (1, 16, 16, 1)):
        _, steps, _ = unroll.restore(cell, tf.fill(shape, 0.5), stop_rules.DecorrelationRule(), 30)
        assert int(steps[0]) == 2


def test_noise_estimate_reads_images_under_3x3_as_noise_free():
    for shape in ((1, 1, 1, 1), (2, 2, 5, 1), (1, 1, 7, 3)):
        np.testing.assert_array_equal(stop_rules.estimate_noise_sigma(tf.ones(shape)).numpy(), 0.0)
    noisy = tf.random.stateless_normal((1, 3, 2000, 1), seed=(0, 1)) * 25 / 255
    assert 20 < float(stop_rules.estimate_noise_sigma(noisy)[0]) < 30
