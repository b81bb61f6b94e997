"""The policy unit: environment contract, rewards, Q-network, DQN smoke training and export."""

import os
import subprocess
import sys

import agents  # noqa: F401  (TF_USE_LEGACY_KERAS before TF-Agents)
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.environments import utils
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from agents import dqn, env, networks
from tests.conftest import REPO, run_module


def _cache(losses, size=16):
    losses = np.asarray(losses, np.float64)
    count, horizon = losses.shape
    iterates = np.random.default_rng(0).uniform(0, 1, (count, horizon, size, size, 1))
    return env.TrajectoryCache(iterates, losses, np.full(count, 25.0))


def test_environment_satisfies_the_tf_agents_contract():
    cache = _cache(np.tile(np.linspace(0.05, 0.01, 9), (4, 1)))
    utils.validate_py_environment(env.StopEnvironment(cache), episodes=6)


def test_rewards_are_scaled_loss_reductions_and_stop_ends_with_zero():
    environment = env.StopEnvironment(_cache([[0.04, 0.01, 0.005, 0.008, 0.02]]))
    first = environment.reset()
    assert first.step_type == ts.StepType.FIRST
    rewards = [float(environment.step(env.CONTINUE).reward) for _ in range(3)]
    np.testing.assert_allclose(rewards, [3.0, 0.5, -0.3], rtol=1e-5)  # λ = 100
    np.testing.assert_array_equal(environment.current_time_step().observation,
                                  environment._cache.iterates[0, 3])
    stop = environment.step(env.STOP)
    assert stop.step_type == ts.StepType.LAST and float(stop.reward) == 0.0


def test_episode_ends_at_the_step_limit():
    environment = env.StopEnvironment(_cache([[0.04, 0.03, 0.02]]))
    environment.reset()
    environment.step(env.CONTINUE)
    last = environment.step(env.CONTINUE)
    assert last.step_type == ts.StepType.LAST and float(last.reward) == pytest.approx(1.0)


def test_trajectory_cache_records_the_restorer_and_the_oracle():
    clean = np.full((2, 8, 8, 1), 0.5, np.float32)
    degraded = clean + 0.2
    decay_to_clean = lambda x, training=False: 0.5 - x  # noqa: E731  (f pulls toward 0.5)
    cache = env.TrajectoryCache.build(decay_to_clean, [(degraded, clean, np.array([25, 25]))], 5)
    assert cache.iterates.shape == (2, 6, 8, 8, 1)
    expected = (0.2 * 0.9 ** np.arange(6)) ** 2
    np.testing.assert_allclose(cache.losses[0], expected, rtol=1e-4)
    assert list(cache.oracle_steps()) == [5, 5]


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


def test_greedy_evaluation_measures_the_gap_to_the_oracle():
    cache = _cache([[0.04, 0.01, 0.02], [0.04, 0.03, 0.01]])
    quality = dqn.stop_quality(cache, np.array([1, 1]))
    assert quality["step_error_mean"] == pytest.approx(-0.5)
    assert quality["psnr_gap_db"] == pytest.approx(10 * np.log10(3) / 2)


def test_dqn_training_resumes_after_interruption(dqn_run):
    assert os.path.exists(os.path.join(dqn_run, "policy", "saved_model.pb"))


def test_exported_policy_runs_without_tf_agents(dqn_run, smoke_run):
    script = (
        "import sys, tensorflow as tf\n"
        "from durr_tf import model, policies, unroll\n"
        f"rule = policies.parse_stop_rule('dqn:{dqn_run}/policy', 'denoise')\n"
        f"cell, _ = model.load_restorer('{smoke_run}/restorer')\n"
        "out, steps, _ = unroll.restore(cell, tf.random.uniform([2, 13, 21, 1]), rule, 5)\n"
        "assert out.shape == (2, 13, 21, 1) and all(0 <= s <= 5 for s in steps.numpy())\n"
        "assert 'tf_agents' not in sys.modules\n"
        "print('ok', list(steps.numpy()))\n")
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_evaluate_accepts_the_learned_stop(dqn_run, smoke_run, image_dir, tmp_path):
    result = run_module("durr_tf.evaluate", "--set", image_dir, "--sigmas", "35", "--limit", 2,
                        "--stop", f"oracle,dqn:{dqn_run}/policy", "--max_steps", 5,
                        "--restorer", os.path.join(smoke_run, "restorer"), "--out", tmp_path)
    assert f"| 35 | dqn:{dqn_run}/policy |" in result.stdout
