"""DQN training of the stop policy over a frozen restorer, following TF-Agents' DQN examples.

Run folder: `config.json`, `machines.json` (the machines its sessions trained on, in order),
`train/` (checkpoints of agent, replay buffer and step, taken at episode ends and restored with
`initialize_or_restore()`, and TensorBoard scalars), `policy/` (the greedy policy that did best
so far on the held-out patches, with that evaluation in `evaluation.json`: a SavedModel that
needs only TensorFlow, read by `durr_tf.core.stop_rules.LearnedStopRule`). Q-learning is not
monotone (a later network can stop worse), so the run keeps its best policy, chosen on
training-set patches held out from the replay, never on the benchmark sets.
"""

import dataclasses
import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tf_agents.agents.dqn import dqn_agent
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import tf_py_environment
from tf_agents.metrics import tf_metrics
from tf_agents.policies import tf_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step
from tf_agents.utils import common

from agents import env, networks
from data import pipelines, sets
from durr_tf.core import restorer_io, tasks
from durr_tf.core.progress import Progress
from durr_tf.training import history
from durr_tf.training.stop_request import StopRequest


ENVIRONMENTS = ("cached", "live")
PRETRAINED_NETWORKS = ("encoder", "q_network")
MACHINES_FILE = "machines.json"  # the machines a run's sessions trained on, in order


@dataclasses.dataclass
class DqnConfig:
    task: str = "denoise"
    restorer: str = ""  # restorer prefix; empty = the shipped one of the task
    train_set: str = ""  # empty: the task's training set
    data_dir: str = ""
    run_dir: str = "runs/dqn_denoise"
    env: str = "cached"  # training environment: "cached" replays trajectories computed once
    # (fast), "live" runs the restorer at every step (the same transitions; see agents.env)
    episodes: int = 1024  # training patches (one trajectory each)
    eval_episodes: int = 256
    patch_size: int = 48
    crop_size: int = 0  # side of the crops the Q-network reads (0: patch_size); a patch
    # larger than a crop is read as whole photos are, through up to 3×3 crops and whole-patch
    # statistics
    max_steps: int = 24  # episode step limit, well beyond the refined map's largest N
    level_count: int = 7  # levels spread evenly over the task's training range
    level_range: tuple = ()  # (low, high) to draw episodes from instead of that range
    iterations: int = 6_000
    collect_steps: int = 4  # environment steps per training iteration
    batch_size: int = 16
    sequence_length: int = 16  # steps per replayed sequence (the LSTM is unrolled over them)
    replay_capacity: int = 20_000
    learning_rate: float = 1e-4
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_iterations: int = 2_000
    explore_stop_probability: float = 0.08  # random actions stop this often (see Exploration)
    target_update_period: int = 200
    gamma: float = 1.0  # the objective (Eq. 5) is the undiscounted sum of loss reductions
    double_q: bool = False  # Double DQN: the online network picks the next action, the target
    # network values it (curbs the upward bias of max over noisy Q(continue), Q(stop) ≈ 0)
    pretrain_iterations: int = 0  # supervised batches before DQN (0: none)
    pretrain_network: str = "encoder"  # what they fit: "encoder" (single iterates' remaining
    # gain, `pretrain_encoder`) or "q_network" (that, then the LSTM and head on whole
    # trajectories, `pretrain_q_network`)
    image_statistics: bool = False  # the Q-network also reads the whole image's noise σ and
    # JPEG blockiness (`networks.image_statistics`), as the blind rules do
    read_quality: bool = False  # with image_statistics: also the JPEG quality factor read
    # off the quantization table (`jpeg_quality.read_quality`), 0 where none fits
    eval_every: int = 1_000
    checkpoint_every: int = 500
    checkpoint_minutes: float = 10.0  # also save when this much wall time passed since the last
    log_every: int = 100
    seed: int = 0

    def __post_init__(self):
        self.train_set = self.train_set or tasks.get(self.task).train_set
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"env is one of {ENVIRONMENTS}, not {self.env!r}")
        if self.pretrain_network not in PRETRAINED_NETWORKS:
            raise ValueError(f"pretrain_network is one of {PRETRAINED_NETWORKS}, "
                             f"not {self.pretrain_network!r}")
        if self.read_quality and not self.image_statistics:
            raise ValueError("read_quality is one of the image statistics: it needs "
                             "image_statistics")


def read_config(run_dir):
    """The `DqnConfig` a run saved in its folder."""
    with open(os.path.join(run_dir, "config.json")) as handle:
        return DqnConfig(**json.load(handle))


SMOKE = dict(episodes=12, eval_episodes=6, patch_size=24, max_steps=6, iterations=12,
             collect_steps=2, batch_size=4, sequence_length=3, replay_capacity=200,
             epsilon_iterations=6, target_update_period=4, eval_every=6, checkpoint_every=4,
             log_every=2)


def training_levels(task, count, level_range=()):
    """`count` levels spread evenly over `level_range`, by default the task's training range."""
    low, high = level_range or (min(task.train_levels), max(task.train_levels))
    levels = np.linspace(low, high, count)
    return tuple(float(v) for v in (np.round(levels) if task.level_name == "qf" else levels))


EPISODE_BATCH = 4  # patches per draw of a level: 256 draws for the 1,024 training episodes


def patch_batches(config, task):
    """(degraded, clean, level) batches of training-set patches: the training episodes', then
    the held-out evaluation's."""
    files = sets.resolve(config.train_set, config.data_dir or None)
    images = pipelines.load_training_images(files, task.channels, config.patch_size,
                                            prepare=task.prepare_clean)
    degrader = task.degrader(training_levels(task, config.level_count, config.level_range))
    batches = []
    for seed, count in ((config.seed, config.episodes), (config.seed + 1, config.eval_episodes)):
        batch = min(EPISODE_BATCH, count)
        data = pipelines.patch_dataset(images, degrader, config.patch_size, batch, seed)
        batches.append([tuple(t.numpy() for t in b) for b in data.take(-(-count // batch))])
    return batches


def training_environment(config, cell, batches, cache=None):
    """The environment the policy trains in, over the patches of `batches`: replaying their
    trajectories (`env="cached"`; `cache`, or computed here once), or running the cell
    (`env="live"`)."""
    if config.env == "live":
        return env.LiveStopEnvironment(cell, batches, config.max_steps, seed=config.seed)
    cache = cache or env.TrajectoryCache.build(cell, batches, config.max_steps)
    return env.StopEnvironment(cache, seed=config.seed)


def remaining_gain(cache):
    """[K, T+1]: the PSNR (dB) each iterate is below the best iterate from it on, i.e. what the
    remaining steps of its trajectory could still gain (0 at and after the peak)."""
    losses = cache.psnr_losses()
    best_ahead = np.minimum.accumulate(losses[:, ::-1], axis=1)[:, ::-1]
    return losses - best_ahead


def optimal_q_targets(psnr):
    """[K, T, 2]: the optimal policy's Q-values at each decision (steps 0..T−1) of trajectories
    whose iterates X_0..X_T have PSNR `psnr` [K, T+1] (dB), ordered (continue, stop):
    Q(stop) = 0 and Q(continue) = the best PSNR at a later step minus the current one, the
    return of continuing to that best step.

    The restorer is deterministic, so these are exact for a policy that knows the whole
    trajectory; one that sees only the iterates so far regresses to their expectation."""
    best_later = np.maximum.accumulate(psnr[:, :0:-1], axis=1)[:, ::-1]
    gain = best_later - psnr[:, :-1]
    return np.stack([gain, np.zeros_like(gain)], axis=-1)


def _fit(loss_of_batch, variables, draw_batch, iterations, name):
    """Adam (1e-3) on `loss_of_batch(*draw_batch())` for `iterations` batches, with progress;
    `variables()` lists what it trains (called once the loss has built them). Returns the mean
    loss of the first and last tenth of the iterations."""
    optimizer = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def fit_batch(*batch):
        with tf.GradientTape() as tape:
            loss = loss_of_batch(*batch)
        trained = variables()
        optimizer.apply_gradients(zip(tape.gradient(loss, trained), trained))
        return loss

    losses = []
    progress = Progress(iterations, 0, name)
    for iteration in range(1, iterations + 1):
        losses.append(float(fit_batch(*draw_batch())))
        if iteration % 100 == 0:
            progress.update(iteration, f"loss {np.mean(losses[-100:]):.4f}")
    tenth = max(1, iterations // 10)
    return float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))


def pretrain_encoder(encoder, cache, iterations, batch_size=64, seed=0):
    """Fits the Q-network's encoder, through a linear head dropped afterwards, to regress the
    remaining gain of single iterates of the training trajectories (Huber loss).

    The TD error alone is too weak a signal for the encoder to learn to read artifacts that
    differ by a few grey levels beside the image content (docs/learned_stop_history.md). The
    remaining gain is what the advantage Q(continue) − Q(stop) estimates, so features that
    predict it are the ones the Q-network needs; DQN then trains the whole network from there.
    Returns the mean loss of the first and last tenth of the iterations.
    """
    gain = remaining_gain(cache).astype(np.float32)
    count, horizon = gain.shape
    head = tf.keras.layers.Dense(1)
    rng = np.random.default_rng(seed)

    def loss_of_batch(iterates, target):
        predicted = head(encoder(iterates))[:, 0]
        return tf.reduce_mean(tf.keras.losses.huber(target[:, None], predicted[:, None]))

    def draw_batch():
        episodes = rng.integers(count, size=batch_size)
        steps = rng.integers(horizon, size=batch_size)
        return cache.iterates[episodes, steps], gain[episodes, steps]

    return _fit(loss_of_batch, lambda: encoder.trainable_variables + head.trainable_variables,
                draw_batch, iterations, "pretrain")


def encoded_iterates(encoder, iterates, chunk=256):
    """[K, T, F] encoder features of [K, T, H, W, C] iterates, `chunk` images per call."""
    images = iterates.reshape((-1,) + iterates.shape[2:])
    encode = tf.function(encoder)
    features = np.concatenate([encode(tf.constant(images[i:i + chunk])).numpy()
                               for i in range(0, len(images), chunk)])
    return features.reshape(iterates.shape[:2] + features.shape[1:])


def pretrain_q_network(q_network, cache, iterations, batch_size=16, seed=0):
    """Fits the Q-network's LSTM and head, the encoder frozen, to the optimal Q-values of whole
    training trajectories (`fit_q_values` on the cached patches' trajectories).

    Unlike `pretrain_encoder`, this teaches the LSTM what the trajectory so far tells: the
    degradation read off X_0 and the steps taken since, which a single iterate leaves
    ambiguous (a σ = 15 patch after one step looks like a σ = 25 one after two). The encoder
    comes from `pretrain_encoder`: trained here too, its features grow until the LSTM's gates
    saturate and every trajectory gets the same Q-values. Being frozen, the encoder reads each
    cached iterate once, before the fit. Returns the mean loss of the first and last tenth.
    """
    targets = optimal_q_targets(-cache.psnr_losses())
    features = encoded_iterates(q_network.encoder, cache.iterates[:, :targets.shape[1]])
    return fit_q_values(q_network, features, targets, iterations, batch_size, seed)


def whole_trajectory_steps(count, steps):
    """[count, steps] step types of trajectories read from their first step: FIRST, then MID
    (the LSTM resets at FIRST)."""
    return tf.constant([[time_step.StepType.FIRST] + [time_step.StepType.MID] * (steps - 1)]
                       * count, tf.int32)


def fit_q_values(q_network, features, targets, iterations, batch_size=16, seed=0):
    """Fits the Q-network's LSTM and head to `targets` [K, T, 2] (`optimal_q_targets`, Huber
    loss) from the encoder's features [K, T, F] of the same trajectories, each read from its
    first step (`pretrain_q_network` on training patches, `agents.calibrate` on whole photos).
    Returns the mean loss of the first and last tenth of the iterations."""
    targets = targets.astype(np.float32)
    count, decisions = targets.shape[:2]
    step_type = whole_trajectory_steps(batch_size, decisions)
    rng = np.random.default_rng(seed)

    def loss_of_batch(episode_features, target):
        q_values, _ = q_network.q_values_of_features(
            episode_features, step_type, q_network.get_initial_state(batch_size), training=True)
        return tf.reduce_mean(tf.keras.losses.huber(target[..., None], q_values[..., None]))

    def draw_batch():
        episodes = rng.integers(count, size=batch_size)
        return features[episodes], targets[episodes]

    def variables():
        return q_network.cell.trainable_variables + q_network.head.trainable_variables

    return _fit(loss_of_batch, variables, draw_batch, iterations, "fit LSTM and head")


def record_machine(run_dir):
    """Adds this machine to the run's `machines.json` unless it is the last one there, so that a
    policy's card names the machines it trained on wherever it is shipped from."""
    path = os.path.join(run_dir, MACHINES_FILE)
    machines = []
    if os.path.exists(path):
        with open(path) as handle:
            machines = json.load(handle)
    this = history.machine()
    if machines[-1:] != [this]:
        with open(path + ".tmp", "w") as handle:
            json.dump(machines + [this], handle, indent=1)
        os.replace(path + ".tmp", path)


def greedy_steps(q_network, cache):
    """Steps chosen by the greedy policy on every cached episode (vectorised over episodes)."""
    count, horizon = cache.iterates.shape[:2]
    state = q_network.get_initial_state(count)
    chosen = np.full(count, horizon - 1)
    stopped = np.zeros(count, bool)
    for n in range(horizon):
        step_type = tf.fill([count], 0 if n == 0 else 1)
        q_values, state = q_network(tf.constant(cache.iterates[:, n]), step_type, state)
        stop_now = (np.argmax(q_values.numpy(), axis=-1) == env.STOP) & ~stopped
        chosen[stop_now] = n
        stopped |= stop_now
    return chosen


def stop_quality(cache, chosen):
    """Mean PSNR lost against the oracle step (dB) and chosen − oracle step statistics."""
    rows = np.arange(len(chosen))
    oracle = cache.oracle_steps()
    loss_chosen, loss_best = cache.losses[rows, chosen], cache.losses[rows, oracle]
    gap = 10 * np.log10(np.maximum(loss_chosen, 1e-12) / np.maximum(loss_best, 1e-12))
    return {"psnr_gap_db": float(np.mean(gap)), "step_error_mean": float(np.mean(chosen - oracle)),
            "step_error_std": float(np.std(chosen - oracle))}


class ExplorationPolicy(tf_policy.TFPolicy):
    """ε-greedy collection whose random action is *stop* with a small probability.

    TF-Agents' ε-greedy draws stop and continue evenly, so a random walk rarely gets past a
    few steps and the late steps, where the decisions that matter are, go unseen. Q-learning
    is off-policy, so a behaviour policy that mostly continues is as valid and covers them.
    """

    def __init__(self, greedy, epsilon, stop_probability):
        super().__init__(greedy.time_step_spec, greedy.action_spec, greedy.policy_state_spec,
                         greedy.info_spec)
        self._greedy, self._epsilon, self._stop_probability = greedy, epsilon, stop_probability

    def _variables(self):
        return self._greedy.variables()

    def _action(self, time_step, policy_state, seed):
        greedy = self._greedy.action(time_step, policy_state)
        batch = tf.shape(time_step.step_type)[:1]
        explore = tf.random.uniform(batch) < self._epsilon()
        random_stop = tf.cast(tf.random.uniform(batch) < self._stop_probability,
                              greedy.action.dtype)
        return greedy._replace(action=tf.where(explore, random_stop, greedy.action))


class PolicyExport(tf.Module):
    """One policy step as plain TensorFlow: (iterate, h, c) -> (Q-values, h, c)."""

    def __init__(self, q_network, channels):
        super().__init__()
        self.encoder, self.cell, self.head = q_network.encoder, q_network.cell, q_network.head
        units = q_network.cell.units
        # No autograph: the step has no Python control flow, and autograph's conversion of
        # the Keras internals can fail at export.
        self.step = tf.function(self._step, autograph=False, input_signature=[
            tf.TensorSpec([None, None, None, channels], tf.float32, name="iterate"),
            tf.TensorSpec([None, units], tf.float32, name="h"),
            tf.TensorSpec([None, units], tf.float32, name="c")])

    def _step(self, iterate, h, c):
        output, (h, c) = self.cell(self.encoder(iterate), [h, c])
        return {"q_values": self.head(output), "h": h, "c": c}


def export_policy(q_network, channels, path):
    module = PolicyExport(q_network, channels)
    tf.saved_model.save(module, path, signatures={"step": module.step})


def q_network_of(config, observation_spec, action_spec):
    """The Q-network a run of `config` (a `DqnConfig`) trains: its crops and whole-image
    readings as the configuration asks."""
    return networks.StopQNetwork(observation_spec, action_spec,
                                 statistics=config.image_statistics, tile=config.crop_size,
                                 read_quality=config.read_quality)


def load_policy_network(policy_dir, config):
    """The Q-network of the policy that a run of `config` (a `DqnConfig`) exported to
    `policy_dir`: built as the run built it, its weights read from the SavedModel's variables,
    where `PolicyExport` keeps them under the names encoder, cell and head."""
    observation_spec = tensor_spec.TensorSpec(
        [config.patch_size, config.patch_size, tasks.get(config.task).channels], tf.float32)
    action_spec = tensor_spec.BoundedTensorSpec([], tf.int32, env.CONTINUE, env.STOP)
    q_network = q_network_of(config, observation_spec, action_spec)
    q_network.create_variables()
    checkpoint = tf.train.Checkpoint(encoder=q_network.encoder, cell=q_network.cell,
                                     head=q_network.head)
    checkpoint.read(os.path.join(policy_dir, "variables", "variables")
                    ).assert_existing_objects_matched()
    return q_network


PREPARATION_TAG = "time/preparation_hours"  # trajectory caches and pretraining, per start


class DqnTrainer:
    """Builds the environment, agent, replay buffer, driver and checkpointer of one run."""

    def __init__(self, config):
        self.started = time.time()  # the trajectory caches and pretraining count as training
        self.config = config
        self.task = tasks.get(config.task)
        tf.keras.utils.set_random_seed(config.seed)
        cell, _ = restorer_io.load_restorer(config.restorer or config.task)
        train_batches, eval_batches = patch_batches(config, self.task)
        self.eval_cache = env.TrajectoryCache.build(cell, eval_batches, config.max_steps)
        self.train_dir = os.path.join(config.run_dir, "train")  # checkpoints and summaries
        self.pretrains = (config.pretrain_iterations > 0
                          and tf.train.latest_checkpoint(self.train_dir) is None)
        self.train_cache = None  # the pretraining's trajectories, also replayed when cached
        if self.pretrains:
            self.train_cache = env.TrajectoryCache.build(cell, train_batches, config.max_steps)
        self.tf_env = tf_py_environment.TFPyEnvironment(
            training_environment(config, cell, train_batches, self.train_cache))
        self.q_network = q_network_of(config, self.tf_env.observation_spec(),
                                      self.tf_env.action_spec())
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
        decay = tf.keras.optimizers.schedules.PolynomialDecay(
            config.epsilon_start, config.epsilon_iterations, config.epsilon_end)
        agent_class = dqn_agent.DdqnAgent if config.double_q else dqn_agent.DqnAgent
        self.agent = agent_class(
            self.tf_env.time_step_spec(), self.tf_env.action_spec(), q_network=self.q_network,
            optimizer=tf.keras.optimizers.RMSprop(config.learning_rate),
            target_update_period=config.target_update_period,
            td_errors_loss_fn=common.element_wise_huber_loss, gamma=config.gamma,
            train_step_counter=self.step)
        self.agent.initialize()
        self.collect_policy = ExplorationPolicy(self.agent.policy, lambda: decay(self.step),
                                                config.explore_stop_probability)
        self.replay = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            self.agent.collect_data_spec, batch_size=self.tf_env.batch_size,
            max_length=config.replay_capacity)
        self.returns = tf_metrics.AverageReturnMetric(buffer_size=100)
        self.lengths = tf_metrics.AverageEpisodeLengthMetric(buffer_size=100)
        observers = [self.replay.add_batch, self.returns, self.lengths]
        self.driver = dynamic_step_driver.DynamicStepDriver(
            self.tf_env, self.collect_policy, observers=observers,
            num_steps=config.collect_steps)
        self.step_driver = dynamic_step_driver.DynamicStepDriver(  # to finish an episode
            self.tf_env, self.collect_policy, observers=observers, num_steps=1)
        self.checkpointer = common.Checkpointer(
            ckpt_dir=self.train_dir, max_to_keep=2, agent=self.agent,
            replay_buffer=self.replay, global_step=self.step)

    def evaluate(self):
        return stop_quality(self.eval_cache, greedy_steps(self.q_network, self.eval_cache))

    def fit(self):
        config = self.config
        os.makedirs(config.run_dir, exist_ok=True)
        with open(os.path.join(config.run_dir, "config.json"), "w") as handle:
            json.dump(dataclasses.asdict(config), handle, indent=2)
        record_machine(config.run_dir)
        self.checkpointer.initialize_or_restore()
        start = int(self.step)
        writer = tf.summary.create_file_writer(self.train_dir)
        if start:
            logging.info("resumed at iteration %d", start)
        elif self.pretrains:
            self._pretrain(writer)
        with writer.as_default(step=start):  # the time before the first iteration
            tf.summary.scalar(PREPARATION_TAG, (time.time() - self.started) / 3600.0)
        collect = common.function(self.driver.run)
        train = common.function(self.agent.train)
        dataset = self.replay.as_dataset(sample_batch_size=config.batch_size,
                                         num_steps=config.sequence_length,
                                         num_parallel_calls=2).prefetch(2)
        iterator = iter(dataset)
        time_step, policy_state = None, self.collect_policy.get_initial_state(1)
        while self.replay.num_frames() < config.batch_size * config.sequence_length:
            time_step, policy_state = collect(time_step, policy_state)
        progress = Progress(config.iterations, start, "dqn")
        saved_at = time.time()
        with StopRequest() as stop_request:
            while int(self.step) < config.iterations and not stop_request.requested:
                time_step, policy_state = collect(time_step, policy_state)
                experience, _ = next(iterator)
                try:
                    loss = float(train(experience).loss)
                except tf.errors.InvalidArgumentError as error:  # TF-Agents' own NaN check
                    if "inf or nan" not in str(error):
                        raise
                    loss = float("nan")
                iteration = int(self.step)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the Q loss became {loss} at iteration {iteration}; the run stopped "
                        f"without saving, so {os.path.join(config.run_dir, 'train')} keeps the "
                        "last good checkpoint (resume it, or restart with a lower learning rate)")
                with writer.as_default(step=iteration):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("collect/average_return", self.returns.result())
                    tf.summary.scalar("collect/average_episode_length", self.lengths.result())
                if iteration % config.log_every == 0:
                    progress.update(iteration, f"loss {loss:.4f}, return "
                                    f"{float(self.returns.result()):.2f}, episode length "
                                    f"{float(self.lengths.result()):.1f}")
                if iteration % config.eval_every == 0:
                    self._log_evaluation(writer, iteration)
                if (iteration % config.checkpoint_every == 0
                        or time.time() - saved_at > 60 * config.checkpoint_minutes):
                    time_step, policy_state = self.save_checkpoint(time_step, policy_state)
                    saved_at = time.time()
        self.save_checkpoint(time_step, policy_state)
        if int(self.step) % config.eval_every or self._best_evaluation() is None:
            self._log_evaluation(writer, int(self.step))
        return int(self.step)

    def _pretrain(self, writer):
        """The supervised start: the encoder, then (`pretrain_network="q_network"`) the LSTM and
        head; a network pretrained whole is a policy already, so it is evaluated (and kept if
        best) as iteration 0."""
        config = self.config
        first, last = pretrain_encoder(self.q_network.encoder, self.train_cache,
                                       config.pretrain_iterations, seed=config.seed)
        logging.info("encoder pretrained on the remaining gain: Huber loss %.4f -> %.4f",
                     first, last)
        if config.pretrain_network == "q_network":
            first, last = pretrain_q_network(self.q_network, self.train_cache,
                                             config.pretrain_iterations, seed=config.seed)
            logging.info("LSTM and head pretrained on the optimal Q-values: Huber loss %.4f -> "
                         "%.4f", first, last)
            self._log_evaluation(writer, 0)
        self.agent.initialize()  # the target network starts from the pretrained weights

    def save_checkpoint(self, time_step, policy_state):
        """Checkpoints at the end of an episode, collecting (without training) until it ends.

        A resumed run starts a fresh episode; saved mid-episode, the replay's last transition
        would be paired with the next episode's first state, a wrong TD target. (No time step:
        nothing was collected since the restore, so the replay still ends where it was saved.)
        """
        while time_step is not None and not bool(tf.reduce_all(time_step.is_last())):
            time_step, policy_state = self.step_driver.run(time_step, policy_state)
        self.checkpointer.save(self.step)
        return time_step, policy_state

    def _log_evaluation(self, writer, iteration):
        """Logs the greedy policy on the held-out patches; exports it when it is the best yet."""
        metrics = self.evaluate()
        logging.info("evaluation at iteration %d: PSNR gap to oracle %.3f dB, step error "
                     "%+.2f ± %.2f", iteration, metrics["psnr_gap_db"],
                     metrics["step_error_mean"], metrics["step_error_std"])
        with writer.as_default(step=iteration):
            for name, value in metrics.items():
                tf.summary.scalar(f"eval/{name}", value)
        best = self._best_evaluation()
        if best is None or metrics["psnr_gap_db"] < best["psnr_gap_db"]:
            self._export(dict(metrics, iteration=iteration))

    def _best_evaluation_path(self):
        return os.path.join(self.config.run_dir, "policy", "evaluation.json")

    def _best_evaluation(self):
        if not os.path.exists(self._best_evaluation_path()):
            return None
        with open(self._best_evaluation_path()) as handle:
            return json.load(handle)

    def _export(self, evaluation):
        """Writes the policy and its held-out evaluation to RUN_DIR/policy (staged, then renamed
        in by `restorer_io.replace_folder`, so a kill mid-write leaves the previous best)."""
        path = os.path.join(self.config.run_dir, "policy")
        staging = path + ".partial"
        shutil.rmtree(staging, ignore_errors=True)
        export_policy(self.q_network, self.task.channels, staging)
        with open(os.path.join(staging, "evaluation.json"), "w") as handle:
            json.dump(evaluation, handle, indent=2)
        restorer_io.replace_folder(staging, path)
