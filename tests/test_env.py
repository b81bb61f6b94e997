"""The two stop environments: the live one, whose step runs the restorer, against the cache."""

import agents  # noqa: F401  (TF_USE_LEGACY_KERAS before TF-Agents)
import numpy as np
import pytest
from absl import flags
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import tf_py_environment, utils
from tf_agents.metrics import tf_metrics
from tf_agents.policies import random_tf_policy
from tf_agents.utils import common

from agents import dqn, env, train_dqn
from durr_tf.core import restorer_io

MAX_STEPS = 4
C, S = env.CONTINUE, env.STOP
# Stops at once, midway and never (the step limit ends those); the action a finished episode
# receives is ignored, as the environment starts the next one.
ACTIONS = [S, C, C, S, C, C, C, C, C, C, S, C, S, C, C, C, C, C, C, C, C, S, C]


@pytest.fixture(scope="module")
def restorer():
    """A small cell with random weights (its output layer starts at zero, a step that does
    nothing) and two batches of 16×16 degraded patches."""
    rng = np.random.default_rng(0)
    cell = restorer_io.build(1, widths=(4, 8, 16))
    cell.set_weights([rng.normal(0.0, 0.2, w.shape).astype(np.float32)
                      for w in cell.get_weights()])
    clean = rng.uniform(0.2, 0.8, (6, 16, 16, 1)).astype(np.float32)
    degraded = (clean + rng.normal(0.0, 0.1, clean.shape)).astype(np.float32)
    levels = np.full(3, 25.0, np.float32)
    batches = [(degraded[:3], clean[:3], levels), (degraded[3:], clean[3:], levels)]
    return cell, batches


def _environment(kind, restorer, seed=3):
    cell, batches = restorer
    config = dqn.DqnConfig(env=kind, max_steps=MAX_STEPS, seed=seed)
    return dqn.training_environment(config, cell, batches)


def _walk(environment, actions):
    steps = [environment.reset()]
    return steps + [environment.step(np.int32(action)) for action in actions]


def test_the_flag_selects_the_environment(restorer):
    assert type(_environment("cached", restorer)) is env.StopEnvironment
    assert type(_environment("live", restorer)) is env.LiveStopEnvironment
    parsed = flags.FlagValues()
    train_dqn.define_flags(parsed)
    parsed(["train_dqn"])
    assert parsed.env == "cached"
    parsed(["train_dqn", "--env", "live"])
    assert parsed.env == "live"
    with pytest.raises(ValueError):
        dqn.DqnConfig(env="replay")


def test_live_and_cached_environments_give_the_same_transitions(restorer):
    cached = _walk(_environment("cached", restorer), ACTIONS)
    live = _walk(_environment("live", restorer), ACTIONS)
    step_types = [int(step.step_type) for step in cached]
    firsts = [step.observation for step in cached if step.is_first()]
    assert len(firsts) == 8 and len({f.tobytes() for f in firsts}) > 3  # several patches
    assert sum(step.is_last() and step.reward != 0 for step in cached) == 2  # the step limit
    assert [int(step.step_type) for step in live] == step_types
    for replayed, computed in zip(cached, live):
        assert computed.observation.dtype == np.float32
        np.testing.assert_allclose(computed.observation, replayed.observation, atol=1e-5)
        np.testing.assert_allclose(computed.reward, replayed.reward, atol=1e-5)
        assert float(computed.discount) == float(replayed.discount)
    assert any(abs(float(step.reward)) > 1e-3 for step in cached)


@pytest.mark.parametrize("kind", ["cached", "live"])
def test_both_environments_satisfy_the_tf_agents_contract(restorer, kind):
    utils.validate_py_environment(_environment(kind, restorer), episodes=3)


def test_the_live_environment_runs_under_the_trainers_driver(restorer):
    """The trainer steps its environment from a tf.function, which calls the live cell back."""
    tf_env = tf_py_environment.TFPyEnvironment(_environment("live", restorer))
    policy = random_tf_policy.RandomTFPolicy(tf_env.time_step_spec(), tf_env.action_spec())
    steps = tf_metrics.EnvironmentSteps()
    driver = dynamic_step_driver.DynamicStepDriver(tf_env, policy, observers=[steps],
                                                   num_steps=6)
    time_step, _ = common.function(driver.run)()
    assert int(steps.result()) == 6 and time_step.observation.shape == (1, 16, 16, 1)
