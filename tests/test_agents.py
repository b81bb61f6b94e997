"""The policy unit: environment contract, rewards, Q-network, DQN smoke training and export."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import agents  # noqa: F401  (TF_USE_LEGACY_KERAS before TF-Agents)
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.environments import tf_py_environment, utils
from tf_agents.policies import greedy_policy, q_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from agents import calibrate, dqn, env, networks
from durr_tf.core import stop_rules
from durr_tf.evaluation import evaluator
from durr_tf.training import curves, history
from tests.conftest import REPO, run_in_process


def _cache(losses, size=16):
    losses = np.asarray(losses, np.float64)
    count, horizon = losses.shape
    iterates = np.random.default_rng(0).uniform(0, 1, (count, horizon, size, size, 1))
    return env.TrajectoryCache(iterates, losses)


def test_environment_satisfies_the_tf_agents_contract():
    cache = _cache(np.tile(np.linspace(0.05, 0.01, 9), (4, 1)))
    utils.validate_py_environment(env.StopEnvironment(cache), episodes=6)


def _db(mse_ratio):
    return 10 * np.log10(mse_ratio)


def test_rewards_are_psnr_gains_and_stop_ends_with_zero():
    environment = env.StopEnvironment(_cache([[0.04, 0.01, 0.005, 0.008, 0.02]]))
    first = environment.reset()
    assert first.step_type == ts.StepType.FIRST
    rewards = [float(environment.step(env.CONTINUE).reward) for _ in range(3)]
    np.testing.assert_allclose(rewards, [_db(4), _db(2), _db(0.625)], rtol=1e-5)  # λ = 1
    assert rewards[0] > rewards[1] > 0 > rewards[2]  # a step past the peak is penalised
    np.testing.assert_array_equal(environment.current_time_step().observation,
                                  environment._cache.iterates[0, 3])
    stop = environment.step(env.STOP)
    assert stop.step_type == ts.StepType.LAST and float(stop.reward) == 0.0


def test_the_return_is_the_psnr_gained_up_to_the_stop():
    losses = [0.09, 0.03, 0.012, 0.01, 0.011]
    environment = env.StopEnvironment(_cache([losses]))
    environment.reset()
    returns = sum(float(environment.step(env.CONTINUE).reward) for _ in range(3))
    assert returns == pytest.approx(_db(0.09 / 0.01), rel=1e-5)  # stopped at the peak


def test_episode_ends_at_the_step_limit():
    environment = env.StopEnvironment(_cache([[0.04, 0.03, 0.02]]))
    environment.reset()
    environment.step(env.CONTINUE)
    last = environment.step(env.CONTINUE)
    assert last.step_type == ts.StepType.LAST and float(last.reward) == pytest.approx(_db(1.5))


def test_exploration_mostly_continues_and_is_greedy_without_epsilon():
    cache = _cache(np.tile(np.linspace(0.05, 0.01, 9), (2, 1)))
    tf_env = tf_py_environment.TFPyEnvironment(env.StopEnvironment(cache))
    network = networks.StopQNetwork(tf_env.observation_spec(), tf_env.action_spec())
    greedy = greedy_policy.GreedyPolicy(  # the agent's `policy`: argmax of the Q-values
        q_policy.QPolicy(tf_env.time_step_spec(), tf_env.action_spec(), network))
    time_step = tf_env.reset()
    state = greedy.get_initial_state(1)
    never_stop = dqn.ExplorationPolicy(greedy, lambda: 1.0, stop_probability=0.0)
    always_stop = dqn.ExplorationPolicy(greedy, lambda: 1.0, stop_probability=1.0)
    no_exploration = dqn.ExplorationPolicy(greedy, lambda: 0.0, stop_probability=1.0)
    for _ in range(5):
        assert int(never_stop.action(time_step, state).action[0]) == env.CONTINUE
        assert int(always_stop.action(time_step, state).action[0]) == env.STOP
        assert int(no_exploration.action(time_step, state).action[0]) == int(
            greedy.action(time_step, state).action[0])


def test_trajectory_cache_records_the_restorer_and_the_oracle():
    clean = np.full((2, 8, 8, 1), 0.5, np.float32)
    degraded = clean + 0.2
    decay_to_clean = lambda x, training=False: 0.5 - x  # noqa: E731  (f pulls toward 0.5)
    cache = env.TrajectoryCache.build(decay_to_clean, [(degraded, clean, np.array([25, 25]))], 5)
    assert cache.iterates.shape == (2, 6, 8, 8, 1)
    expected = (0.2 * 0.9 ** np.arange(6)) ** 2
    np.testing.assert_allclose(cache.losses[0], expected, rtol=1e-4)
    assert list(cache.oracle_steps()) == [5, 5]


def test_episode_levels_span_the_training_range_or_the_given_one():
    from durr_tf.core import tasks

    assert dqn.training_levels(tasks.get("denoise"), 4) == (25.0, 35.0, 45.0, 55.0)
    assert dqn.training_levels(tasks.get("deblock"), 7, (10, 40)) == (
        10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0)


def test_q_network_size_and_any_image_size():
    spec = tensor_spec.TensorSpec([48, 48, 1], tf.float32)
    action = tensor_spec.BoundedTensorSpec([], tf.int32, 0, 1)
    network = networks.StopQNetwork(spec, action)
    q_values, state = network(tf.zeros([2, 48, 48, 1]), tf.zeros([2], tf.int32),
                              network.get_initial_state(2))
    assert q_values.shape == (2, 2)
    assert sum(int(np.prod(v.shape)) for v in network.trainable_variables) == 102_338
    export = dqn.PolicyExport(network, channels=1)
    for height, width in ((7, 5), (1, 1), (321, 481)):
        out = export.step(tf.zeros([3, height, width, 1]), tf.zeros([3, 48]), tf.zeros([3, 48]))
        assert out["q_values"].shape == (3, 2) and out["h"].shape == (3, 48)
    with_statistics = networks.StopQNetwork(spec, action, statistics=True)
    with_statistics(tf.zeros([2, 48, 48, 1]), tf.zeros([2], tf.int32),
                    with_statistics.get_initial_state(2))
    assert sum(int(np.prod(v.shape)) for v in with_statistics.trainable_variables) == (
        102_338 + 4 * 48 * networks.STATISTICS)  # the LSTM's input weights of the statistics


def test_a_photo_is_read_as_the_mean_of_patch_sized_crops():
    """The encoder sees a large image as the training patches it learned on: a 200×300 photo is
    read through the 48×48 crops centred in the cells of a 3×3 grid (rows from 9, 76 and 142,
    columns from 26, 126 and 226), so a photo holding one patch at those nine places and
    anything elsewhere gives that patch's features."""
    encoder = networks.StopEncoder(tile=48, grid=3)
    patch = tf.random.stateless_uniform([1, 48, 48, 1], (0, 1))
    photo = np.full([1, 200, 300, 1], 0.9, np.float32)
    for top in (9, 76, 142):
        for left in (26, 126, 226):
            photo[:, top:top + 48, left:left + 48] = patch
    np.testing.assert_allclose(encoder(photo), encoder(patch), rtol=1e-4, atol=1e-6)
    photo[:, 0:9] = 0.0  # outside every crop: no effect
    np.testing.assert_allclose(encoder(photo), encoder(patch), rtol=1e-4, atol=1e-6)
    encoder.tile = None  # the same weights reading the whole photo at once differ
    assert not np.allclose(encoder(photo), encoder(patch), atol=1e-4)


def test_training_patches_larger_than_the_crops_are_read_as_photos_are():
    """With a crop size below the patch size (`--crop_size`), a 96×96 patch is read through
    its four 48×48 quadrants, and the Q-values of features computed once (the LSTM's
    pretraining) are the network's own."""
    spec = tensor_spec.TensorSpec([96, 96, 1], tf.float32)
    action = tensor_spec.BoundedTensorSpec([], tf.int32, 0, 1)
    network = networks.StopQNetwork(spec, action, statistics=True, tile=48)
    patches = tf.random.stateless_uniform([2, 3, 96, 96, 1], (0, 6))
    step_type = tf.constant([[ts.StepType.FIRST, ts.StepType.MID, ts.StepType.MID]] * 2)
    q_values, _ = network(patches, step_type, network.get_initial_state(2))
    features = dqn.encoded_iterates(network.encoder, patches.numpy(), chunk=4)
    quadrants = [patches[:, :, r:r + 48, c:c + 48] for r in (0, 48) for c in (0, 48)]
    crop_features = np.mean([dqn.encoded_iterates(network.encoder, q.numpy())[..., :-2]
                             for q in quadrants], axis=0)
    np.testing.assert_allclose(features[..., :-2], crop_features, rtol=1e-4, atol=1e-6)
    from_features, _ = network.q_values_of_features(features, step_type,
                                                    network.get_initial_state(2))
    np.testing.assert_allclose(from_features, q_values, rtol=1e-4, atol=1e-6)


def test_image_statistics_read_the_whole_image_beside_the_crops():
    """With `statistics`, the encoder's features end with the blind rules' σ and blockiness of
    the whole image, so noise outside every crop, which the crops' features miss, shows there;
    and the readings rise with the noise level and as the JPEG quality falls."""
    from data import degradations

    encoder = networks.StopEncoder(tile=48, grid=3, statistics=True)
    photo = np.array(tf.random.stateless_uniform([1, 200, 300, 1], (0, 2)) * 0.1 + 0.45)
    features = encoder(photo).numpy()
    assert features.shape == (1, networks.FEATURES + networks.STATISTICS)
    np.testing.assert_allclose(features[:, -2:], networks.image_statistics(photo), rtol=1e-6)
    noisy = photo.copy()
    noisy[:, 0:9] += 0.2 * np.array(tf.random.stateless_normal([1, 9, 300, 1], (0, 3)))
    changed = encoder(noisy).numpy()
    np.testing.assert_allclose(changed[:, :-2], features[:, :-2], rtol=1e-4, atol=1e-6)
    assert changed[0, -2] > features[0, -2] + 0.05

    clean = np.array(tf.image.resize(tf.random.stateless_uniform([1, 12, 16, 1], (0, 4)),
                                     [96, 128]))[0]
    sigma = [networks.image_statistics((clean + s / 255 * np.array(tf.random.stateless_normal(
        clean.shape, (1, 5))))[None])[0, 0] for s in (5, 25, 50)]
    blockiness = [networks.image_statistics(degradations.jpeg_pil(clean, q)[None])[0, 1]
                  for q in (60, 30, 10)]
    assert sigma[0] < sigma[1] < sigma[2] and blockiness[0] < blockiness[1] < blockiness[2]


def test_the_jpeg_quality_read_off_the_table_is_a_third_statistic():
    """With `read_quality`, the features end with log1p(QF/10) of the table an image was
    quantized with, and 0 for an image on none."""
    from data import degradations

    clean = np.array(tf.image.resize(tf.random.stateless_uniform([1, 12, 16, 1], (0, 8)),
                                     [96, 128]))[0]
    encoder = networks.StopEncoder(tile=48, grid=3, statistics=True, read_quality=True)
    batch = np.stack([degradations.jpeg_pil(clean, q) for q in (10, 40)] + [clean])
    features = encoder(batch).numpy()
    assert encoder.output_size == features.shape[1] == networks.FEATURES + networks.STATISTICS + 1
    np.testing.assert_allclose(features[:, -1], np.log1p([1.0, 4.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(features[:, -3:-1], networks.image_statistics(batch), rtol=1e-6)
    with pytest.raises(ValueError, match="needs statistics"):
        networks.StopEncoder(read_quality=True)
    with pytest.raises(ValueError, match="needs image_statistics"):
        dqn.DqnConfig(read_quality=True)


def test_a_color_image_is_read_through_its_channels_mean():
    color = tf.random.stateless_uniform([2, 40, 56, 3], (0, 6))
    noisy = color + 0.1 * tf.random.stateless_normal(color.shape, (0, 7))
    np.testing.assert_allclose(networks.image_statistics(noisy),
                               networks.image_statistics(tf.reduce_mean(noisy, -1, keepdims=True)),
                               rtol=1e-5)


def test_grid_crops_keeps_images_apart_caps_the_count_and_handles_small_sides():
    x = tf.reshape(tf.range(2 * 5 * 9, dtype=tf.float32), [2, 5, 9, 1])
    crops = networks.grid_crops(x, 4, grid=3)  # sides 5 -> one crop of 4, 9 -> two crops of 4
    assert crops.shape == (4, 4, 4, 1)
    np.testing.assert_array_equal(crops[1], x[0, 0:4, 4:8])  # cells 0-4 and 4-9 of the 9 columns
    np.testing.assert_array_equal(crops[2], x[1, 0:4, 0:4])
    assert networks.grid_crops(tf.zeros([3, 2, 7, 1]), 4, grid=3).shape == (3, 2, 4, 1)
    assert networks.grid_crops(tf.zeros([2, 321, 481, 1]), 48, grid=3).shape == (18, 48, 48, 1)
    assert networks.grid_crops(tf.zeros([1, 48, 48, 1]), 48, grid=3).shape == (1, 48, 48, 1)


def test_greedy_evaluation_measures_the_gap_to_the_oracle():
    cache = _cache([[0.04, 0.01, 0.02], [0.04, 0.03, 0.01]])
    quality = dqn.stop_quality(cache, np.array([1, 1]))
    assert quality["step_error_mean"] == pytest.approx(-0.5)
    assert quality["psnr_gap_db"] == pytest.approx(10 * np.log10(3) / 2)


def test_remaining_gain_is_the_psnr_still_to_reach_ahead():
    cache = _cache([[0.04, 0.01, 0.02, 0.005], [0.02, 0.01, 0.04, 0.08]])
    gain = dqn.remaining_gain(cache)
    np.testing.assert_allclose(gain[0], 10 * np.log10([8, 2, 4, 1]), atol=1e-9)
    np.testing.assert_allclose(gain[1], 10 * np.log10([2, 1, 1, 1]), atol=1e-9)


def test_pretraining_teaches_the_encoder_to_read_the_remaining_gain():
    """Patches whose noise amplitude sets how much their trajectory can still gain (9 dB at
    amplitude 0.3, 0.6 dB at 0.02, none once restored to 0.005): the fitted encoder's loss falls
    well below its start, and its features tell the first two amplitudes apart."""
    rng = np.random.default_rng(0)
    amplitude = np.repeat([0.02, 0.3], 16)
    noise = rng.standard_normal((32, 2, 16, 16, 1))
    iterates = 0.5 + noise * np.stack([amplitude, np.full(32, 0.005)], 1)[..., None, None, None]
    losses = np.stack([np.full(32, 1e-2), 1e-2 / 10 ** (30 * amplitude / 10)], axis=1)
    cache = env.TrajectoryCache(iterates, losses)
    encoder = networks.StopEncoder(features=8, tile=16)
    first, last = dqn.pretrain_encoder(encoder, cache, iterations=100, batch_size=16)
    assert last < 0.25 * first
    features = encoder(cache.iterates[:, 0]).numpy()
    assert np.linalg.norm(features[:16].mean(0) - features[16:].mean(0)) > 3 * (
        features[:16].std(0).mean() + features[16:].std(0).mean())


def test_optimal_q_values_are_the_best_later_psnr_less_the_current():
    cache = _cache([[0.04, 0.01, 0.02, 0.005], [0.02, 0.01, 0.04, 0.08]])
    targets = dqn.optimal_q_targets(-cache.psnr_losses())
    assert targets.shape == (2, 3, 2)
    np.testing.assert_allclose(targets[0, :, env.CONTINUE], 10 * np.log10([8, 2, 4]), atol=1e-9)
    np.testing.assert_allclose(targets[1, :, env.CONTINUE], 10 * np.log10([2, 0.25, 0.5]),
                               atol=1e-9)
    assert np.all(targets[..., env.STOP] == 0)


def test_q_network_pretraining_reads_the_level_from_the_trajectory_so_far():
    """Two levels whose second iterates look alike (amplitude 0.05): after the light level's
    (0.05 at X_0) the next step loses 3 dB, after the heavy level's (0.3 at X_0) it gains
    3 dB. Only the LSTM, which saw X_0, can tell them apart; pretrained after the encoder,
    the network's Q(continue) − Q(stop) at step 1 has the sign of the gain for both."""
    tf.keras.utils.set_random_seed(0)  # the network's initial weights
    rng = np.random.default_rng(0)
    heavy = np.repeat([False, True], 16)
    amplitudes = np.stack([np.where(heavy, 0.3, 0.05), np.full(32, 0.05), np.full(32, 0.05)], 1)
    iterates = 0.5 + rng.standard_normal((32, 3, 16, 16, 1)) * amplitudes[..., None, None, None]
    after = np.where(heavy, 10 ** (-0.3), 10 ** 0.3)  # the MSE ratio of step 2 to step 1
    losses = np.stack([np.full(32, 2e-2), np.full(32, 1e-2), 1e-2 * after], axis=1)
    cache = env.TrajectoryCache(iterates, losses)
    observation_spec = tensor_spec.TensorSpec([16, 16, 1], tf.float32)
    action_spec = tensor_spec.BoundedTensorSpec([], tf.int32, 0, 1)
    q_network = networks.StopQNetwork(observation_spec, action_spec, features=8, lstm_units=8)
    dqn.pretrain_encoder(q_network.encoder, cache, iterations=100, batch_size=16)
    first, last = dqn.pretrain_q_network(q_network, cache, iterations=600, batch_size=8)
    assert last < 0.5 * first
    step_type = tf.constant([[0, 1]] * 32)
    q_values, _ = q_network(tf.constant(cache.iterates[:, :2], tf.float32), step_type,
                            q_network.get_initial_state(32))
    advantage = (q_values[:, 1, env.CONTINUE] - q_values[:, 1, env.STOP]).numpy()
    assert np.all(advantage[heavy] > 1.0) and np.all(advantage[~heavy] < -1.0)


def test_dqn_training_resumes_after_interruption(dqn_run):
    """The fixture stops the run at 8 and resumes it to 12 (kills: test_interruption)."""
    assert tf.train.latest_checkpoint(os.path.join(dqn_run, "train")).endswith("ckpt-12")
    with open(os.path.join(dqn_run, "policy", "evaluation.json")) as handle:
        kept = json.load(handle)
    assert kept["iteration"] in (0, 6, 12) and np.isfinite(kept["psnr_gap_db"])  # eval_every 6
    assert os.path.exists(os.path.join(dqn_run, "policy", "saved_model.pb"))


def test_a_resumed_live_run_builds_no_pretraining_trajectories(dqn_run):
    """Only a fresh run pretrains, so only a fresh live run computes trajectories to train on."""
    with open(os.path.join(dqn_run, "config.json")) as handle:
        config = dqn.DqnConfig(**{**json.load(handle), "env": "live"})
    assert config.pretrain_iterations > 0
    trainer = dqn.DqnTrainer(config)
    assert not trainer.pretrains and trainer.train_cache is None


def test_a_checkpoint_waits_for_the_episode_to_end(dqn_run, tmp_path):
    """A resume starts a fresh episode, so the replay saved must end with a finished one."""
    with open(os.path.join(dqn_run, "config.json")) as handle:
        config = dqn.DqnConfig(**{**json.load(handle), "run_dir": str(tmp_path)})
    trainer = dqn.DqnTrainer(config)
    collect_one = trainer.step_driver.run
    time_step, policy_state = collect_one(None, trainer.collect_policy.get_initial_state(1))
    while bool(time_step.is_last()[0]):  # the first step may stop; go on into the next episode
        time_step, policy_state = collect_one(time_step, policy_state)
    time_step, _ = trainer.save_checkpoint(time_step, policy_state)
    assert bool(time_step.is_last()[0])
    assert int(trainer.replay.gather_all().next_step_type[0, -1]) == int(ts.StepType.LAST)
    assert tf.train.latest_checkpoint(os.path.join(tmp_path, "train")) is not None


def test_exported_policy_runs_without_tf_agents(dqn_run, smoke_run):
    script = (
        "import sys, tensorflow as tf\n"
        "from durr_tf.core import restorer_io, stop_rules, unroll\n"
        f"rule = stop_rules.parse_stop_rule('dqn:{dqn_run}/policy', 'denoise')\n"
        f"cell, _ = restorer_io.load_restorer('{smoke_run}/restorer')\n"
        "out, steps, _ = unroll.restore(cell, tf.random.uniform([2, 13, 21, 1]), rule, 5)\n"
        "assert out.shape == (2, 13, 21, 1) and all(0 <= s <= 5 for s in steps.numpy())\n"
        "assert 'tf_agents' not in sys.modules\n"
        "print('ok', list(steps.numpy()))\n")
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_margin_stops_where_the_advantage_first_falls_below_it():
    advantages = np.array([[3.0, 0.2, 0.04, -0.1], [2.0, 0.5, 0.3, 0.1]])

    def steps(offset, scale=0.0):
        return calibrate.stop_steps(advantages, stop_rules.StopMargin(offset, scale))

    np.testing.assert_array_equal(steps(0.0), [3, 3])  # 3: the last
    np.testing.assert_array_equal(steps(0.05), [2, 3])
    np.testing.assert_array_equal(steps(0.4), [1, 2])
    np.testing.assert_array_equal(steps(9.0), [0, 0])
    # a shrinking margin: 0.6, 0.3, 0.2, 0.15 before steps 0..3
    assert stop_rules.StopMargin(0.0, 0.6).at(2) == pytest.approx(0.2)
    np.testing.assert_array_equal(steps(0.0, 0.6), [1, 3])


def test_the_chosen_margin_stops_early_and_late_peaks_where_no_constant_can():
    # An early peak (step 1) whose advantage there is still 0.5, and a late one (step 4) whose
    # advantage one step before is 0.3: a constant margin stops one of them off its peak.
    advantages = np.array([[3.0, 0.5, -0.2, -0.5, -0.6, -0.7], [3.0, 2.0, 1.0, 0.3, 0.1, -0.1]])
    psnr = np.array([[20.0, 26.0, 25.6, 25.0, 24.5, 24.0], [18.0, 22.0, 24.0, 25.5, 25.8, 25.7]])
    margin, gaps = calibrate.choose_margin(advantages, psnr)
    assert gaps.min() == 0.0 and margin.scale > 0
    steps = calibrate.stop_steps(advantages, margin)
    assert calibrate.summary(steps, psnr) == {
        "psnr_gap_db": 0.0, "step_error_mean": 0.0, "step_error_std": 0.0}
    constant = [i for i, m in enumerate(calibrate.CANDIDATES) if m.scale == 0]
    assert gaps[constant].min() > 0
    greedy = calibrate.CANDIDATES.index(stop_rules.StopMargin())
    assert gaps[greedy] == pytest.approx((0.4 + 0.1) / 2)  # A stops at 2, B at 5


def test_per_step_margins_stop_peaks_that_no_shrinking_curve_can():
    # A peaks at step 1 (advantage 0.3 there), B at step 3, but B's advantage is only 0.35 at
    # step 1, 0.2 at step 2 and still 0.6 at step 3: stopping both needs m(1) in (0.3, 0.35],
    # m(2) ≤ 0.2 and m(3) > 0.6, which no offset + scale / (n + 1) is.
    advantages = np.array([[3.0, 0.3, -0.2, -0.4, -0.5, -0.6], [3.0, 0.35, 0.2, 0.6, 0.1, 0.0]])
    psnr = np.array([[20.0, 26.0, 25.6, 25.0, 24.5, 24.0], [18.0, 22.0, 24.0, 25.5, 25.2, 25.0]])
    curve, _ = calibrate.choose_margin(advantages, psnr)
    assert calibrate.psnr_gap(advantages, psnr, curve) > 0
    refined = calibrate.refine_steps(advantages, psnr, curve, steps=5)
    np.testing.assert_array_equal(calibrate.stop_steps(advantages, refined), [1, 3])
    assert calibrate.psnr_gap(advantages, psnr, refined) == 0.0
    assert len(refined.steps) == 5
    # a gain no larger than min_gain leaves the curve's values
    kept = calibrate.refine_steps(advantages, psnr, curve, steps=5,
                                  min_gain=calibrate.psnr_gap(advantages, psnr, curve))
    np.testing.assert_allclose(kept.steps, curve.at(np.arange(5)))
    assert refined.steps[4] == pytest.approx(curve.at(4))  # no decision there: the curve's


def test_per_step_margins_end_at_the_first_peak_of_the_latest_level():
    # rows: image-major, level-minor (2 images × 2 levels); level 1 peaks at steps 3 and 4
    psnr = np.array([[1, 3, 2, 1, 0], [1, 2, 3, 4, 3], [1, 3, 2, 1, 0], [1, 2, 3, 3, 5]], float)
    assert calibrate.decided_steps(psnr, level_count=2) == 3


def test_a_per_step_margin_reads_the_same_from_numpy_tensors_and_json():
    margin = stop_rules.StopMargin(0.1, 1.0, steps=[0.5, 0.2, 0.7])
    assert margin == stop_rules.StopMargin(**json.loads(json.dumps(dataclasses.asdict(margin))))
    expected = [0.5, 0.2, 0.7, 0.1 + 1.0 / 4, 0.1 + 1.0 / 6]  # beyond the table: the curve
    steps = np.array([0, 1, 2, 3, 5])
    np.testing.assert_allclose(margin.at(steps), expected)
    np.testing.assert_allclose(margin.at(tf.constant(steps, tf.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(margin.at(tf.constant(steps)), expected, rtol=1e-6)  # int steps
    np.testing.assert_allclose(stop_rules.StopMargin(0.1, 1.0).at(tf.constant(steps)),
                               [0.1 + 1.0 / (n + 1) for n in steps], rtol=1e-6)
    assert margin.at(1) == pytest.approx(0.2) and margin.at(9) == pytest.approx(0.1 + 1.0 / 10)


def test_step_heads_read_each_early_step_by_its_own_row_from_numpy_tensors_and_json():
    rows = [[1.0, 0.0, 0.5], [0.0, 2.0, -1.0], [1.0, 1.0, 0.0]]  # [w_1, w_2, bias] per step
    heads = stop_rules.StepHeads(rows)
    assert heads == stop_rules.StepHeads(json.loads(json.dumps(heads.rows)))
    assert not stop_rules.StepHeads() and heads
    output = np.array([[[1.0, 3.0]] * 4, [[-2.0, 0.5]] * 4])  # [K=2, T=4, units=2]
    expected = [[1.5, 5.0, 4.0, 4.0], [-1.5, 0.0, -1.5, -1.5]]  # the last row from step 2 on
    np.testing.assert_allclose(heads.advantage(np.arange(4), output), expected)
    for n in range(4):
        np.testing.assert_allclose(heads.advantage(tf.constant(n), tf.constant(output[:, n])),
                                   np.array(expected)[:, n], rtol=1e-6)


def test_step_heads_fit_the_gain_of_continuing_at_each_early_step_apart(dqn_run):
    """Without a penalty, the joint fit is a least-squares fit of each early step's rows alone,
    and of the later steps' rows together for the last head."""
    q_network = dqn.load_policy_network(os.path.join(dqn_run, "policy"),
                                        _short_calibration(dqn_run))
    rng = np.random.default_rng(0)
    features = rng.normal(size=(80, 5, q_network.encoder.output_size)).astype(np.float32)
    psnr = np.cumsum(rng.normal(size=(80, 5)), axis=1)
    heads = calibrate.fit_step_heads(q_network, features, psnr, count=2, ridge=1e-9)
    assert len(heads.rows) == 3
    outputs = calibrate.lstm_outputs(q_network, features)[:, :-1]
    inputs = np.concatenate([outputs, np.ones(outputs.shape[:2] + (1,))], axis=-1)
    gain = dqn.optimal_q_targets(psnr)[..., env.CONTINUE]
    for row, steps in zip(heads.rows, ([0], [1], [2, 3])):
        apart, *_ = np.linalg.lstsq(inputs[:, steps].reshape(-1, inputs.shape[-1]),
                                    gain[:, steps].reshape(-1), rcond=None)
        np.testing.assert_allclose(row, apart, rtol=1e-3, atol=1e-4)


def test_a_window_holds_the_stop_around_the_blind_rules_step():
    # rows: a policy that always stops, one that never does, one that would stop at 1 and 4
    advantages = np.array([[-1.0] * 6, [1.0] * 6, [1.0, -1.0, 1.0, 1.0, -1.0, 1.0]])
    blind_steps = np.array([3, 3, 3])

    def steps(**window):
        margin = stop_rules.StopMargin(**window)
        assert margin == stop_rules.StopMargin(**json.loads(json.dumps(dataclasses.asdict(margin))))
        return calibrate.stop_steps(advantages, margin, blind_steps)

    np.testing.assert_array_equal(steps(), [0, 5, 1])
    # not before 3 − 1 = 2: the first stop the policy asks for from there on
    np.testing.assert_array_equal(steps(window_below=1), [2, 5, 4])
    np.testing.assert_array_equal(steps(window_above=1), [0, 4, 1])  # by 3 + 1 at the latest
    np.testing.assert_array_equal(steps(window_below=0, window_above=0), [3, 3, 3])
    n = tf.range(6)[None]
    held = stop_rules.StopMargin(window_below=1, window_above=1).held(
        n, tf.constant(advantages < 0), tf.constant(blind_steps, tf.int32)[:, None])
    np.testing.assert_array_equal(held.numpy().argmax(axis=1), [2, 4, 4])


def test_a_pull_leans_the_margin_toward_the_blind_rules_step():
    # rows: a policy that leans to stopping (−0.05 dB), one that leans to continuing (+0.15 dB)
    advantages = np.array([[-0.05] * 8, [0.15] * 8])
    blind_steps = np.array([3, 3])
    margin = stop_rules.StopMargin(pull=0.1)
    assert margin == stop_rules.StopMargin(**json.loads(json.dumps(dataclasses.asdict(margin))))
    assert margin.reads_blind_steps and not margin.has_window
    np.testing.assert_array_equal(
        calibrate.stop_steps(advantages, stop_rules.StopMargin(), blind_steps), [0, 7])
    # margins 0.1 · (n − 3): the first stops at N̂ = 3; the second once 0.15 < 0.1 · (n − 3)
    np.testing.assert_array_equal(calibrate.stop_steps(advantages, margin, blind_steps), [3, 5])
    n = tf.range(8)[None]
    stop = margin.stops(n, tf.constant(advantages, tf.float32),
                        tf.constant(blind_steps, tf.int32)[:, None])
    np.testing.assert_array_equal(stop.numpy().argmax(axis=1), [3, 5])


def test_the_pull_is_fitted_where_the_blind_rule_reads_the_peak_better_than_the_policy():
    """Twelve trajectories that peak at step 4. A policy whose advantage is the optimal one
    plus noise of ±0.3 dB stops off the peak; with the blind steps at the peak the fit leans
    it there, and with blind steps that are wrong it does not lean."""
    rng = np.random.default_rng(0)
    psnr = np.tile(-0.1 * np.abs(np.arange(10) - 4.0), (12, 1))
    optimal = np.concatenate([dqn.optimal_q_targets(psnr)[..., env.CONTINUE],
                              np.full((12, 1), -0.1)], axis=1)
    noisy = optimal + rng.choice([-0.3, 0.3], size=optimal.shape)
    peaks = np.full(12, 4)
    _, leaned = calibrate.fit_margin(noisy, psnr, 1, 0.0, peaks, pull=True)
    assert leaned.pull > 0
    np.testing.assert_array_equal(calibrate.stop_steps(noisy, leaned, peaks), peaks)
    _, unleaned = calibrate.fit_margin(optimal, psnr, 1, 0.0, np.zeros(12, int), pull=True)
    assert unleaned.pull == 0.0
    np.testing.assert_array_equal(calibrate.stop_steps(optimal, unleaned, np.zeros(12, int)),
                                  peaks)


def test_the_window_is_open_where_the_policy_reads_the_peak_and_tight_where_the_rule_does():
    peaks = np.random.default_rng(0).integers(1, 6, size=12)
    psnr = -np.abs(np.arange(8)[None] - peaks[:, None]).astype(float)
    optimal = np.concatenate([dqn.optimal_q_targets(psnr)[..., env.CONTINUE],
                              np.full((12, 1), -1.0)], axis=1)
    wrong_blind_steps = np.zeros(12, int)
    open_window = calibrate.choose_window(optimal, psnr, wrong_blind_steps,
                                          stop_rules.StopMargin())
    assert not open_window.has_window
    always_stops = np.full_like(psnr, -1.0)
    held = calibrate.choose_window(always_stops, psnr, peaks, stop_rules.StopMargin())
    assert held.window_below == 0 and held.window_above is None  # ties: the widest
    np.testing.assert_array_equal(calibrate.stop_steps(always_stops, held, peaks), peaks)


def test_the_learned_stop_leaned_or_held_follows_the_blind_rules_step(dqn_run, smoke_run):
    from durr_tf.core import restorer_io, unroll
    policy = os.path.join(dqn_run, "policy")
    cell, _ = restorer_io.load_restorer(os.path.join(smoke_run, "restorer"))
    rng = np.random.default_rng(0)
    x = tf.constant(np.clip(0.5 + rng.normal(0, 1, [2, 32, 32, 1]) * np.array(
        [25.0, 50.0])[:, None, None, None] / 255.0, 0, 1), tf.float32)
    blind = stop_rules.EstimatedLevelRule("denoise").initial_state(x).numpy()
    assert blind[0] < blind[1] < 18

    def steps(margin):  # in a graph, as the exported SavedModel runs it
        rule = stop_rules.LearnedStopRule(policy, margin, refined_map="denoise")
        return tf.function(lambda v: unroll.restore(cell, v, rule, max_steps=20)[1])(x).numpy()

    np.testing.assert_array_equal(steps(stop_rules.StopMargin(np.inf, window_below=0)), blind)
    np.testing.assert_array_equal(steps(stop_rules.StopMargin(-np.inf, window_above=2)),
                                  blind + 2)
    # a margin of 50 + 100 · (n − N̂) dB: below −50 before N̂ (no advantage is that low), 50 at N̂
    np.testing.assert_array_equal(steps(stop_rules.StopMargin(50.0, pull=100.0)), blind)
    points = ((15.0, 2), (55.0, 12))  # a blind map of the σ read
    mapped = stop_rules.mapped_steps(points, stop_rules.read_level("denoise", x)).numpy()
    np.testing.assert_array_equal(
        steps(stop_rules.StopMargin(np.inf, window_below=0, blind_map=points)), mapped)
    for margin in (stop_rules.StopMargin(window_below=0), stop_rules.StopMargin(pull=0.1)):
        with pytest.raises(ValueError, match="refined_map"):
            stop_rules.LearnedStopRule(policy, margin)


def test_calibration_writes_the_margin_the_learned_stop_reads(dqn_run, image_dir, tmp_path):
    policy = str(tmp_path / "policy")
    shutil.copytree(os.path.join(dqn_run, "policy"), policy)
    shutil.copy(os.path.join(dqn_run, "config.json"), tmp_path / "config.json")
    assert stop_rules.LearnedStopRule(policy).margin == stop_rules.StopMargin()  # greedy
    result = run_in_process("agents.calibrate", "--policy", policy, "--set", image_dir,
                            "--images", 3)
    record = json.load(open(os.path.join(policy, stop_rules.MARGIN_FILE)))
    assert record["images"] == 3 and len(record["calibrated"]["levels"]) == 7
    assert record["calibrated"]["all"]["psnr_gap_db"] <= record["greedy"]["all"]["psnr_gap_db"]
    assert f'"offset": {record["margin"]["offset"]}' in result.stdout
    rule = stop_rules.LearnedStopRule(policy)
    assert rule.margin == stop_rules.StopMargin(**record["margin"])
    x = tf.random.uniform([2, 24, 24, 1])
    state = rule.initial_state(x)
    always, _ = stop_rules.LearnedStopRule(policy, stop_rules.StopMargin(np.inf))(0, x, state)
    never, _ = stop_rules.LearnedStopRule(policy, stop_rules.StopMargin(-np.inf))(0, x, state)
    assert bool(tf.reduce_all(always)) and not bool(tf.reduce_any(never))


def test_evaluate_accepts_the_learned_stop(dqn_run, smoke_run, image_dir, tmp_path):
    result = run_in_process("durr_tf.evaluate", "--set", image_dir, "--sigmas", "35", "--limit",
                            2, "--stop", f"oracle,dqn:{dqn_run}/policy", "--max_steps", 5,
                            "--restorer", os.path.join(smoke_run, "restorer"), "--out", tmp_path)
    assert f"| 35 | dqn:{dqn_run}/policy |" in result.stdout


def test_ship_policy_writes_a_card_beside_a_loadable_policy(dqn_run, image_dir, tmp_path,
                                                            benchmark_sets_are_image_dir):
    from agents import ship_policy
    from durr_tf.core import restorer_io, stop_rules, tasks

    policy = os.path.join(dqn_run, "policy")
    config = json.load(open(os.path.join(dqn_run, "config.json")))
    cell, _ = restorer_io.load_restorer(config["restorer"])
    results = evaluator.evaluate(cell, tasks.get("denoise"), [os.path.join(image_dir, "img0.png")],
                                [35.0], ["oracle", f"dqn:{policy}"], max_steps=5)
    evaluator.write_results(results, str(tmp_path / "eval"), "one image")
    shipped = ship_policy.ship_policy(dqn_run, str(tmp_path / "eval" / "results.json"),
                                      str(tmp_path / "denoise_gray_policy"))
    card = json.load(open(os.path.join(shipped, "card.json")))
    selected = json.load(open(os.path.join(policy, "evaluation.json")))
    assert card["policy_iteration"] == selected["iteration"] and card["run_iterations"] == 12
    preparation = curves.read_scalars(os.path.join(dqn_run, "train"))[dqn.PREPARATION_TAG]
    # the first start and the resumed one each log the time before their first iteration
    assert [step for step, _, _ in preparation][0] == 0 and len(preparation) == 2
    assert min(hours for _, _, hours in preparation) > 0
    assert card["task"] == "denoise" and card["stop_margin"] is None  # not calibrated
    assert card["command"].startswith("python -m agents.train_dqn --smoke --restorer ")
    assert set(card["evaluation"]["psnr"]["35"]) >= {"oracle", f"dqn:{policy}"}
    assert all(len(steps) == 2 for steps in card["check"]["steps"].values())
    rule = stop_rules.LearnedStopRule(shipped)
    assert rule.parameters == card["parameters"]
    assert not os.path.exists(shipped + ".partial")


def test_a_policy_card_names_the_machines_its_run_trained_on(dqn_run, tmp_path):
    """The run's record first (one entry: both sessions of the fixture ran here); a run from
    before the record: the card shipped before from the same training, else this machine."""
    from agents import dqn, ship_policy

    config = json.load(open(os.path.join(dqn_run, "config.json")))
    assert json.load(open(os.path.join(dqn_run, dqn.MACHINES_FILE))) == [history.machine()]
    os.makedirs(tmp_path / "shipped")
    with open(tmp_path / "shipped" / "card.json", "w") as handle:
        json.dump({"training": config, "machine": "the training machine"}, handle)
    assert ship_policy.training_machine(dqn_run, config, str(tmp_path / "shipped")) == (
        history.machine())
    old_run = str(tmp_path / "old_run")  # no machines.json
    os.makedirs(old_run)
    assert ship_policy.training_machine(old_run, config, str(tmp_path / "shipped")) == (
        "the training machine")
    other = dict(config, episodes=config["episodes"] + 1)  # another run's policy
    assert ship_policy.training_machine(old_run, other, str(tmp_path / "shipped")) == (
        history.machine())
    assert ship_policy.training_machine(old_run, config, str(tmp_path / "none")) == (
        history.machine())
    with open(os.path.join(old_run, dqn.MACHINES_FILE), "w") as handle:
        json.dump(["machine A", "machine B"], handle)
    dqn.record_machine(old_run)
    assert ship_policy.training_machine(old_run, config, str(tmp_path / "shipped")) == (
        f"machine A; then machine B; then {history.machine()}")
    dqn.record_machine(old_run)  # the same machine again adds nothing
    assert len(json.load(open(os.path.join(old_run, dqn.MACHINES_FILE)))) == 3


def test_a_policy_card_command_runs_under_train_dqn_flags():
    """Smoke runs come back as --smoke; settings with no flag become a comment, not a flag."""
    import shlex

    from absl import flags

    from agents import ship_policy, train_dqn

    smoke = dict(dataclasses.asdict(dqn.DqnConfig()), **dqn.SMOKE, train_set="/data/images",
                 run_dir="/runs/x")
    api = dict(dataclasses.asdict(dqn.DqnConfig()), double_q=True, gamma=0.9, episodes=64)
    for config in (smoke, api):
        command = ship_policy.training_command(config)
        words = shlex.split(command, comments=True)
        assert words[:3] == ["python", "-m", "agents.train_dqn"]
        parsed = flags.FlagValues()
        train_dqn.define_flags(parsed)
        parsed(["train_dqn"] + words[3:])  # raises on a flag train_dqn does not define
    assert ship_policy.training_command(smoke) == (
        "python -m agents.train_dqn --smoke --train_set /data/images")
    assert ship_policy.training_command(api) == (
        "python -m agents.train_dqn --episodes 64 --double_q "
        "# set through the Python API: gamma=0.9")


def test_calibration_levels_are_drawn_around_the_nominal_ones_within_their_spacing():
    rng = np.random.default_rng(0)
    levels = (5.0, 10.0, 15.0, 20.0)
    draws = np.array([calibrate.jittered_levels(levels, rng, integer=False) for _ in range(200)])
    assert np.all(np.abs(draws - levels) <= 2.5) and draws.min() >= 5 and draws.max() <= 20
    assert len(np.unique(np.round(draws[:, 1], 3))) > 100  # a continuum, not the grid
    qualities = calibrate.jittered_levels((10.0, 20.0, 30.0), rng, integer=True)
    np.testing.assert_array_equal(qualities, np.round(qualities))


def _short_calibration(dqn_run, max_steps=4):
    """The smoke run's configuration with two levels and short trajectories."""
    config = dqn.read_config(dqn_run)
    return dataclasses.replace(config, level_count=2, level_range=(15.0, 50.0),
                               max_steps=max_steps)


def test_cross_validation_scores_each_photo_with_the_margin_fitted_on_the_others():
    """Six photos at two levels, PSNR falling 1 dB per step from each trajectory's peak. An
    advantage that is the optimal Q(continue) (≥ 1 dB before the peak, −1 dB at it) stops at
    the peak with any margin the other photos fit, so every photo scores 0; the blind steps (0)
    lose 1 dB per step to the peak."""
    peaks = np.random.default_rng(0).integers(1, 6, size=12)
    psnr = -np.abs(np.arange(8)[None] - peaks[:, None]).astype(float)
    advantages = np.concatenate([dqn.optimal_q_targets(psnr)[..., env.CONTINUE],
                                 np.full((12, 1), -1.0)], axis=1)
    cross = calibrate.cross_validation(advantages, psnr, np.zeros(12, int), ("15", "50"), 3)
    assert cross["images"] == 6 and cross["calibrated"]["all"]["psnr_gap_db"] == 0.0
    assert cross["estimate"]["all"]["psnr_gap_db"] == pytest.approx(peaks.mean(), abs=1e-4)
    assert cross["gap_difference_db"]["mean"] == pytest.approx(-peaks.mean(), abs=1e-4)
    per_photo = peaks.reshape(6, 2).mean(axis=1)
    assert cross["gap_difference_db"]["standard_error"] == pytest.approx(
        per_photo.std(ddof=1) / np.sqrt(6), abs=1e-4)


def _peaks_by_level(levels_read):
    """[K, 25] trajectories that lose 0.1 dB per step from a peak at 60 / level (5 → 12,
    20 → 3, 60 → 1) and the peaks."""
    peaks = np.round(60.0 / levels_read).astype(int)
    return -0.1 * np.abs(np.arange(25)[None] - peaks[:, None]), peaks


def test_a_blind_map_is_fitted_to_the_steps_that_peak_at_the_levels_read():
    levels_read = np.repeat(np.arange(5.0, 61.0), 2)
    psnr, peaks = _peaks_by_level(levels_read)
    points = calibrate.fit_blind_map(levels_read, psnr, (5.0, 10.0, 20.0, 30.0, 60.0))
    assert [level for level, _ in points] == [5.0, 10.0, 20.0, 30.0, 60.0]
    assert dict(points)[5.0] == 12 and dict(points)[60.0] == 1
    steps = calibrate.blind_map_steps(points, levels_read, 24)
    # linear between five points cannot follow 60 / level everywhere, but comes within a step
    assert np.abs(steps - peaks).max() <= 1
    assert calibrate.steps_gap(steps, psnr) < 0.05
    assert calibrate.steps_gap(steps, psnr) <= calibrate.steps_gap(
        calibrate.blind_map_steps(((5.0, 12), (60.0, 1)), levels_read, 24), psnr)
    margin = stop_rules.StopMargin(window_below=0, window_above=0, blind_map=points)
    assert margin == stop_rules.StopMargin(**json.loads(json.dumps(dataclasses.asdict(margin))))
    assert isinstance(margin.blind_rule("deblock"), stop_rules.ReadLevelRule)
    assert type(stop_rules.StopMargin(pull=0.1).blind_rule("deblock")) is (
        stop_rules.EstimatedLevelRule)


def test_cross_validation_with_a_blind_map_fits_the_map_on_the_other_photos():
    """Eight photos at two levels read exactly; a policy that always stops at once, held in a
    window of width 0 around the map's steps, stops where the map fitted on the other photos
    says: at every peak."""
    levels_read = np.tile([10.0, 30.0], 8)
    psnr, peaks = _peaks_by_level(levels_read)
    always_stops = np.full_like(psnr, -1.0)
    cross = calibrate.cross_validation(always_stops, psnr, np.ones(16, int), ("10", "30"), 4,
                                       window=True, levels_read=levels_read,
                                       map_levels=(10.0, 30.0))
    assert cross["read_level_rule"]["all"]["psnr_gap_db"] == 0.0
    assert cross["calibrated"]["all"]["psnr_gap_db"] == 0.0
    assert cross["estimate"]["all"]["psnr_gap_db"] == pytest.approx(0.1 * (peaks - 1).mean())


def test_calibration_fits_the_margin_and_scores_it_and_the_blind_rule_on_held_out_photos(
        dqn_run, image_dir, tmp_path):
    policy = shutil.copytree(os.path.join(dqn_run, "policy"), tmp_path / "policy")
    record = calibrate.calibrate(str(policy), _short_calibration(dqn_run), image_dir, images=3,
                                 held_out=2, folds=2)
    assert record["images"] == 3 and record["levels"] == [15.0, 50.0]
    assert record["held_out"]["images"] == 2
    assert set(record["held_out"]) == {"images", "calibrated", "estimate"}
    assert min(record["held_out"][name]["all"]["psnr_gap_db"]
               for name in ("calibrated", "estimate")) >= 0.0
    gaps = {name: record[name]["all"]["psnr_gap_db"]
            for name in ("greedy", "curve", "calibrated", "estimate")}
    assert gaps["calibrated"] <= gaps["curve"] <= gaps["greedy"]  # each search keeps the best
    assert min(gaps.values()) >= 0.0  # no stop beats the best step
    assert set(record["estimate"]["levels"]) == {"15", "50"}
    cross = record["cross_validation"]
    assert cross["folds"] == 2 and cross["images"] == 5  # the 3 fitted and the 2 held out
    assert cross["gap_difference_db"]["mean"] == pytest.approx(
        cross["calibrated"]["all"]["psnr_gap_db"] - cross["estimate"]["all"]["psnr_gap_db"],
        abs=2e-4)  # every photo has both levels, so the per-photo mean is the overall one
    assert json.load(open(policy / stop_rules.MARGIN_FILE)) == json.loads(json.dumps(record))


def test_calibration_keeps_its_trajectories_and_refits_from_them_without_the_restorer(
        dqn_run, image_dir, tmp_path, monkeypatch):
    policy = shutil.copytree(os.path.join(dqn_run, "policy"), tmp_path / "policy")
    kept = str(tmp_path / "trajectories.npz")

    def run(max_steps=4, step_min_gain=calibrate.STEP_MIN_GAIN, pull=False, window=False):
        return calibrate.calibrate(str(policy), _short_calibration(dqn_run, max_steps=max_steps),
                                   image_dir, images=2, held_out=1, trajectories_file=kept,
                                   step_min_gain=step_min_gain, folds=3, pull=pull,
                                   window=window)

    first = run()
    assert sorted(np.load(kept).files) == sorted(
        ["key"] + [f"{part}_{name}" for part in ("fitted", "held_out")
                   for name in ("features", "psnr", "blind_steps")])

    def no_restorer(*args, **kwargs):
        raise AssertionError("the restorer ran again")

    monkeypatch.setattr(calibrate, "trajectories", no_restorer)
    assert run() == first  # read back: the same record without running the restorer
    every_gain, no_step = run(step_min_gain=0.0), run(step_min_gain=100.0)
    assert (every_gain["step_min_gain_db"], no_step["step_min_gain_db"]) == (0.0, 100.0)
    curve = stop_rules.StopMargin(no_step["margin"]["offset"], no_step["margin"]["scale"])
    np.testing.assert_allclose(no_step["margin"]["steps"],
                               curve.at(np.arange(len(no_step["margin"]["steps"]))))
    assert (every_gain["calibrated"]["all"]["psnr_gap_db"]
            <= first["calibrated"]["all"]["psnr_gap_db"]
            <= no_step["calibrated"]["all"]["psnr_gap_db"]
            == no_step["curve"]["all"]["psnr_gap_db"])
    windowed = run(window=True)
    assert not stop_rules.StopMargin(**first["margin"]).has_window

    def without_window(margin):
        return {key: value for key, value in margin.items() if not key.startswith("window_")}

    assert without_window(windowed["margin"]) == without_window(first["margin"])  # fitted after
    assert stop_rules.LearnedStopRule(str(policy), refined_map="denoise").margin == (
        stop_rules.StopMargin(**windowed["margin"]))  # the window is read back with the margin
    assert (windowed["calibrated"]["all"]["psnr_gap_db"]
            <= first["calibrated"]["all"]["psnr_gap_db"])  # the open window is a candidate
    leaned = run(pull=True)
    assert leaned["margin"]["pull"] in calibrate.PULLS and first["margin"]["pull"] == 0.0
    assert (leaned["calibrated"]["all"]["psnr_gap_db"]
            <= first["calibrated"]["all"]["psnr_gap_db"])  # no pull is a candidate
    assert stop_rules.LearnedStopRule(str(policy), refined_map="denoise").margin == (
        stop_rules.StopMargin(**leaned["margin"]))
    mapped = calibrate.calibrate(str(policy), _short_calibration(dqn_run), image_dir, images=2,
                                 held_out=1, trajectories_file=kept, folds=3, pull=True,
                                 blind_map=True)  # from the kept trajectories, σ read anew
    points = stop_rules.StopMargin(**mapped["margin"]).blind_map
    assert [level for level, _ in points] == mapped["levels"]
    for scores in (mapped, mapped["held_out"], mapped["cross_validation"]):
        assert scores["read_level_rule"]["all"]["psnr_gap_db"] >= 0.0
    read_back = stop_rules.LearnedStopRule(str(policy), refined_map="denoise").margin
    assert read_back.blind_map == points and read_back.blind_rule("denoise").points == points
    with pytest.raises(ValueError, match="differs in max_steps"):
        run(max_steps=5)
    with pytest.raises(ValueError, match="pull or a window"):
        calibrate.calibrate(str(policy), _short_calibration(dqn_run), image_dir, images=2,
                            trajectories_file=kept, blind_map=True)


def test_calibration_levels_joined_photo_by_photo_keep_rows_image_major():
    jittered = np.arange(6).reshape(6, 1) * np.ones((1, 2))  # 3 photos × 2 levels
    joined = calibrate.joined_levels(jittered, 10 + jittered, level_count=2)
    np.testing.assert_array_equal(joined[:, 0], [0, 1, 10, 11, 2, 3, 12, 13, 4, 5, 14, 15])
    assert calibrate.level_names((15.0, 50.0), exact_levels=True) == [
        "15", "50", "15 exact", "50 exact"]


def test_calibration_with_exact_levels_also_scores_every_photo_at_the_levels_themselves(
        dqn_run, image_dir, tmp_path, monkeypatch):
    """The exact levels' trajectories are each photo's at the nominal levels, with their own
    noise seeds; σ = 15 noise then leaves every photo at about 20·log10(255/15) = 24.6 dB."""
    policy = shutil.copytree(os.path.join(dqn_run, "policy"), tmp_path / "policy")
    kept = str(tmp_path / "trajectories.npz")
    calls = []
    computed = calibrate.trajectories

    def recorded(cell, encoder, task, cleans, levels, max_steps, seed, jitter=True):
        calls.append((len(cleans), seed, jitter))
        return computed(cell, encoder, task, cleans, levels, max_steps, seed, jitter)

    monkeypatch.setattr(calibrate, "trajectories", recorded)
    record = calibrate.calibrate(str(policy), _short_calibration(dqn_run), image_dir, images=2,
                                 held_out=1, trajectories_file=kept, folds=3,
                                 exact_levels=True)
    assert calls == [(2, 1, True), (1, 2, True), (2, 4, False), (1, 5, False)]
    names = ["15", "50", "15 exact", "50 exact"]
    assert record["exact_levels"] and record["levels"] == [15.0, 50.0]
    for scores in (record["calibrated"], record["held_out"]["estimate"],
                   record["cross_validation"]["calibrated"]):
        assert list(scores["levels"]) == names
    assert record["cross_validation"]["images"] == 3
    with np.load(kept) as stored:
        assert json.loads(str(stored["key"]))["exact_levels"] is True
        np.testing.assert_allclose(stored["fitted_exact_psnr"][0::2, 0], 24.6, atol=0.3)
    with pytest.raises(ValueError, match="differs in exact_levels"):
        calibrate.calibrate(str(policy), _short_calibration(dqn_run), image_dir, images=2,
                            held_out=1, trajectories_file=kept)


def test_calibration_fits_the_lstm_and_head_on_other_photos_once(dqn_run, image_dir, tmp_path):
    policy = str(shutil.copytree(os.path.join(dqn_run, "policy"), tmp_path / "policy"))
    config = _short_calibration(dqn_run)
    trained = dqn.load_policy_network(policy, config)
    kept = str(tmp_path / "trajectories.npz")

    def run(trajectories_file=kept, **fit):
        return calibrate.calibrate(policy, config, image_dir, images=2, held_out=1,
                                   trajectories_file=trajectories_file, **fit)

    with pytest.raises(ValueError, match="give fit_images"):
        run(step_heads=2)
    record = run(fit_images=3, fit_iterations=20, step_heads=2)
    assert record["fit"]["images"] == 3 and record["fit"]["iterations"] == 20
    assert record["fit"]["step_heads"] == 2 and len(record["step_heads"]) == 3
    key = json.loads(str(np.load(kept)["key"]))
    assert len(key["network"]) == 3
    assert not set(key["network"]) & set(key["fitted"] + key["held_out"])
    assert json.load(open(os.path.join(policy, stop_rules.MARGIN_FILE))) == json.loads(
        json.dumps(record))
    assert os.path.exists(os.path.join(policy, "evaluation.json"))  # the rest of the folder kept

    fitted = dqn.load_policy_network(policy, config)  # the folder's network is the fitted one
    for before, after in zip(trained.encoder.variables, fitted.encoder.variables):
        np.testing.assert_array_equal(before.numpy(), after.numpy())
    assert not np.allclose(trained.cell.variables[0].numpy(), fitted.cell.variables[0].numpy())

    # The calibration reads the advantages off kept features, by the step heads; the exported
    # step that the learned stop runs gives the same ones, past the last early step too.
    iterates = np.random.default_rng(0).uniform(size=(2, 4, 40, 40, 1)).astype(np.float32)
    features = np.stack([fitted.encoder(iterates[:, n]).numpy() for n in range(4)], axis=1)
    rule = stop_rules.LearnedStopRule(policy)
    assert rule.step_heads == stop_rules.StepHeads(record["step_heads"])
    state = rule.initial_state(tf.constant(iterates[:, 0]))
    stepwise = []
    for n in range(4):
        advantage, state = rule.advantage(tf.constant(n), tf.constant(iterates[:, n]), state)
        stepwise.append(advantage.numpy())
    read = calibrate.advantages_of(fitted, features, rule.step_heads)
    np.testing.assert_allclose(read, np.stack(stepwise, 1), rtol=1e-4, atol=1e-5)
    assert not np.allclose(read, calibrate.advantages_of(fitted, features), atol=1e-3)

    with pytest.raises(ValueError, match="fitted on photos already"):
        run(fit_images=3)
    # A margin-only calibration of the fitted policy (its trajectories computed anew: the kept
    # file holds the fit's photos too, so its key differs) keeps the fit's record.
    assert run(trajectories_file="") == record
