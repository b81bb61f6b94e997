"""Training the restoration unit, unrolled per level by the refined map or a fixed N.

Run folder layout: `config.json` (the resolved configuration), `ckpt/` (model, its moving
average, optimizer, step, plateau state; a killed run resumes from the latest), `history.jsonl`
(the run's scalars, small enough to commit; see `durr_tf.training.history`), `train/`
(TensorBoard), and
at the end `restorer.*` and `restorer_ema.*` (raw weights and their exponential moving average),
the format `durr_tf.core.restorer_io.load_restorer` reads.
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from data import pipelines, sets
from durr_tf.core import precision, restorer_io, stop_rules, tasks, unet, unroll
from durr_tf.core.progress import Progress
from durr_tf.evaluation import metrics
from durr_tf.training import history
from durr_tf.training.stop_request import StopRequest


@dataclasses.dataclass
class TrainConfig:
    task: str = "denoise"
    unrolling: str = "refined"  # "refined": level -> N by the paper's map; "naive": fixed N
    naive_steps: int = 8
    train_set: str = ""  # registered sets or image folders, comma-separated; empty: the task's
    train_levels: tuple = ()  # empty: the task's training levels
    val_set: str = ""  # empty: the task's
    val_images: int = 12
    val_crop: int = 128
    data_dir: str = ""
    run_dir: str = "runs/denoise"
    steps: int = 100_000
    max_minutes: float = 0.0  # stop (with a checkpoint) after this wall time; 0 = no limit
    batch_size: int = 24
    patch_size: int = 64
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-6
    set_learning_rate: float = 0.0  # >0: replaces the rate a resumed run restored (manual drop)
    plateau_patience: int = 16  # validations without improvement before lr /= 10
    lr_schedule: str = "plateau"  # or "cosine": learning_rate -> min_learning_rate, decay_steps
    decay_start: int = 0  # step at which the cosine decay starts from learning_rate
    decay_steps: int = 0  # length of the cosine decay; the rate stays at its floor afterwards
    val_every: int = 200
    checkpoint_every: int = 100
    checkpoint_minutes: float = 10.0  # also save when this much wall time passed since the last
    log_every: int = 20
    seed: int = 0
    precision: str = "auto"  # or float32, mixed_bfloat16, mixed_float16 (durr_tf.core.precision)
    ema_decay: float = 0.999  # decay of the weights' exponential moving average; 0 = none
    devices: int = 1  # >1: MirroredStrategy over that many devices (GPUs, else logical CPUs)
    widths: tuple = unet.WIDTHS

    def __post_init__(self):
        if self.lr_schedule not in ("plateau", "cosine"):
            raise ValueError(f"lr_schedule is {self.lr_schedule!r}, not plateau or cosine")
        if self.lr_schedule == "cosine" and self.decay_steps <= 0:
            raise ValueError("the cosine schedule needs decay_steps > 0")
        task = tasks.get(self.task)
        self.train_set = self.train_set or task.train_set
        self.val_set = self.val_set or task.val_set

    def levels(self):
        return tuple(self.train_levels) or tasks.get(self.task).train_levels


# Settings train_restorer has no flag for (set through the Python API).
NO_FLAG = ("val_images", "val_crop", "min_learning_rate", "log_every", "widths")

SMOKE = dict(steps=6, batch_size=4, patch_size=32, val_images=2, val_crop=32, val_every=3,
             checkpoint_every=2, log_every=1)


def make_strategy(devices):
    """The run's distribution strategy.

    With TF_CONFIG naming a cluster of more than one task (Kubeflow's TFJob and the cloud
    trainers set it), MultiWorkerMirroredStrategy over that cluster: each worker trains on all
    the GPUs it sees (CUDA_VISIBLE_DEVICES limits them), or on its CPU. Otherwise one device by
    default, or MirroredStrategy over `devices` GPUs, else logical CPU devices.

    Joining a cluster and splitting the CPU must both happen before TensorFlow initialises its
    devices, so a process must create the trainer before running any TF op.
    """
    cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = cluster.cluster_spec()
    if sum(spec.num_tasks(job) for job in spec.jobs) > 1:
        if devices > 1:
            raise ValueError("under TF_CONFIG every worker trains on all the GPUs it sees; "
                             "choose them with CUDA_VISIBLE_DEVICES, not --devices")
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=cluster)
    if devices <= 1:
        return tf.distribute.get_strategy()
    if len(tf.config.list_physical_devices("GPU")) >= devices:
        return tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("GPU")[:devices]])
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) < devices:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError as error:
            raise RuntimeError(f"cannot split the CPU into {devices} devices once TensorFlow "
                               "has started; start a fresh process") from error
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")[:devices]])


def steps_for_levels(config, levels):
    """How many Euler steps a batch of this level is unrolled in training."""
    if config.unrolling == "naive":
        return tf.constant(config.naive_steps, tf.int32)
    if config.unrolling == "refined":
        return stop_rules.refined_steps(tasks.get(config.task).refined_map, levels[0])
    raise ValueError(f"unknown unrolling {config.unrolling!r} (refined or naive)")


RENAMED_KEYS = {"policy": "unrolling"}  # keys of run configs saved under an older name


def current_keys(config):
    """A saved run configuration (config.json, a history's phase) with today's key names."""
    return {RENAMED_KEYS.get(key, key): value for key, value in config.items()}


def load_validation(config, task):
    """Fixed degraded/clean center crops of the validation set at every training level."""
    files = sets.resolve(config.val_set, config.data_dir or None)[: config.val_images]
    crops = []
    for path in files:
        image = task.read_clean(path)
        h, w = image.shape[:2]
        size = min(config.val_crop, h, w)
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(image[top:top + size, left:left + size])
    size = min(c.shape[0] for c in crops)
    clean = np.stack([c[:size, :size] for c in crops])
    batches = []
    for i, level in enumerate(config.levels()):
        degraded = np.stack([task.degrade(c, level, (config.seed + 7, 100 * i + k))
                             for k, c in enumerate(clean)])
        batches.append((level, degraded, clean))
    return batches


class Trainer:
    """Owns the model, optimizer, checkpoint and loop for one run folder.

    In a cluster every worker runs this same code, saving included (saving may run collective
    ops), and resumes from the run folder's checkpoint, so the run folder must be a shared volume
    that every worker reads. Only the chief writes it: any other worker writes into a scratch
    folder that `fit` removes.
    """

    def __init__(self, config):
        self.config = config
        self.task = tasks.get(config.task)
        self.precision = precision.resolve(config.precision)
        self.strategy = make_strategy(config.devices)
        # TensorFlow's rule: the "chief" task, else worker 0; always true on one host.
        self.is_chief = self.strategy.extended.should_checkpoint
        self.output_dir = (config.run_dir if self.is_chief
                           else tempfile.mkdtemp(prefix="durr_worker_"))
        os.makedirs(self.output_dir, exist_ok=True)
        keras.utils.set_random_seed(config.seed)  # same seed, same initial weights
        with self.strategy.scope():
            self.model = restorer_io.build(self.task.channels, config.widths, self.precision)
            self.ema_model = restorer_io.build(self.task.channels, config.widths, self.precision)
            self.ema_model.set_weights(self.model.get_weights())
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            if self.precision == "mixed_float16":
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
            # Slots exist before restoring or tracing, so checkpoints restore them and the
            # replicas never create variables inside the step.
            self.optimizer.build(self.model.trainable_variables)
        # Loop bookkeeping lives outside the strategy: read on the host, never mirrored.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_val = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.bad_vals = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.learning_rate = tf.Variable(config.learning_rate, dtype=tf.float64, trainable=False)
        state = dict(model=self.model, optimizer=self.optimizer, step=self.step,
                     best_val=self.best_val, bad_vals=self.bad_vals,
                     learning_rate=self.learning_rate)
        self.checkpoint = tf.train.Checkpoint(ema_model=self.ema_model, **state)
        # Checkpoints written before the moving average existed restore through this one.
        self.checkpoint_without_ema = tf.train.Checkpoint(**state)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(self.output_dir, "ckpt"), max_to_keep=3)
        self.history = history.History(self.output_dir)
        if config.lr_schedule == "cosine":
            self.cosine = keras.optimizers.schedules.CosineDecay(
                config.learning_rate, config.decay_steps,
                alpha=config.min_learning_rate / config.learning_rate)

    # -- setup -----------------------------------------------------------------------------
    def restore_or_initialize(self):
        """Resumes from the latest checkpoint of the run folder, if there is one."""
        latest = tf.train.latest_checkpoint(os.path.join(self.config.run_dir, "ckpt"))
        if latest:
            saved = {name for name, _ in tf.train.list_variables(latest)}
            if any(name.startswith("ema_model/") for name in saved):
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            else:
                self.checkpoint_without_ema.restore(latest).assert_existing_objects_matched()
                self.ema_model.set_weights(self.model.get_weights())
            logging.info("resumed from %s at step %d", latest, int(self.step))
        # In a cluster every worker must have found the same checkpoint.
        resumed = float(self._sum_over_replicas(tf.constant(float(self.step), tf.float64)))
        if resumed != self.strategy.num_replicas_in_sync * int(self.step):
            raise RuntimeError(f"this worker resumed at step {int(self.step)} and another one "
                               "elsewhere: --run_dir must be a shared volume every worker reads")
        self.history.resume(int(self.step))
        if self.config.set_learning_rate > 0:
            # A manual drop also restarts the plateau watch, measured from the new rate.
            logging.info("learning rate set to %.0e", self.config.set_learning_rate)
            self.learning_rate.assign(self.config.set_learning_rate)
            self.best_val.assign(np.inf)
            self.bad_vals.assign(0)
        self.optimizer.learning_rate.assign(float(self.learning_rate))

    def write_config(self):
        with open(os.path.join(self.output_dir, "config.json"), "w") as handle:
            json.dump(dataclasses.asdict(self.config), handle, indent=2)

    def dataset(self):
        """The stream of global batches (--batch_size patches each), split over the replicas.

        Sharding by data makes every worker build the whole stream, split each global batch
        into one slice per replica and keep its own replicas' slices. So every replica of a step
        trains on a slice of the same global batch, with its one degradation level, and the
        losses equal one device's on the same batches; the patches the other workers keep cost
        little beside the unrolled U-Net steps.
        """
        files = [path for name in self.config.train_set.split(",")
                 for path in sets.resolve(name.strip(), self.config.data_dir or None)]
        images = pipelines.load_training_images(files, self.task.channels, self.config.patch_size,
                                                prepare=self.task.prepare_clean)
        data = pipelines.patch_dataset(
            images, self.task.degrader(self.config.levels()), self.config.patch_size,
            self.config.batch_size, self.config.seed, start_batch=int(self.step))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        return iter(self.strategy.experimental_distribute_dataset(data.with_options(options)))

    # -- steps -----------------------------------------------------------------------------
    def _train_step_fn(self):
        config, model_, optimizer = self.config, self.model, self.optimizer
        global_batch = config.batch_size
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

        def replica_step(degraded, clean, levels):
            steps = steps_for_levels(config, levels)
            with tf.GradientTape() as tape:
                out = unroll.unroll_fixed(model_, degraded, steps, training=True)
                per_image = tf.reduce_mean(tf.square(out - clean), axis=[1, 2, 3])
                loss = tf.reduce_sum(per_image) / global_batch
                objective = optimizer.scale_loss(loss) if scaled else loss
            grads = tape.gradient(objective, model_.trainable_variables)
            optimizer.apply_gradients(zip(grads, model_.trainable_variables))
            return loss

        @tf.function
        def train_step(iterator):
            batch = next(iterator)
            losses = self.strategy.run(replica_step, args=batch)
            if config.ema_decay:
                for average, weight in zip(self.ema_model.weights, model_.weights):
                    average.assign(config.ema_decay * average + (1 - config.ema_decay) * weight)
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return train_step

    def _sum_over_replicas(self, value):
        """The sum of this worker's `value` over all replicas of all workers."""
        return self.strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            self.strategy.experimental_distribute_values_from_function(lambda _: value), axis=None)

    def _on_any_worker(self, *flags):
        """For each of this worker's flags, whether any worker has it set, so that all workers
        save and stop at the same step: they must run the same collective ops in one order."""
        counts = self._sum_over_replicas(tf.constant(flags, tf.float32)).numpy()
        return [bool(count > 0) for count in counts]

    def validate(self, batches, cell=None):
        """Mean MSE and PSNR per level after the training policy's N steps, of `cell` (by
        default the trained weights)."""
        results = {}
        for level, degraded, clean in batches:
            steps = steps_for_levels(self.config, tf.constant([level]))
            out = unroll.unroll_fixed(cell or self.model, tf.constant(degraded), steps).numpy()
            results[level] = (float(np.mean((out - clean) ** 2)),
                              metrics.mean_psnr(out, clean), out[0], degraded[0], clean[0])
        return results

    def _follow_cosine(self):
        """Sets the rate of the cosine schedule at the current step (the start rate before
        `decay_start`, the floor after the decay)."""
        steps_into_decay = max(int(self.step) - self.config.decay_start, 0)
        rate = float(self.cosine(steps_into_decay))
        self.learning_rate.assign(rate)
        self.optimizer.learning_rate.assign(rate)

    def _plateau(self, val_loss):
        """Divides the learning rate by 10 after `plateau_patience` validations without gain
        (the plateau schedule; the cosine schedule keeps only the record of the best)."""
        if val_loss < float(self.best_val) * (1 - 1e-3):
            self.best_val.assign(val_loss)
            self.bad_vals.assign(0)
            return
        self.bad_vals.assign_add(1)
        if self.config.lr_schedule != "plateau":
            return
        if int(self.bad_vals) >= self.config.plateau_patience:
            new_rate = max(float(self.learning_rate) / 10, self.config.min_learning_rate)
            if new_rate < float(self.learning_rate):
                logging.info("validation plateau: learning rate %.0e -> %.0e",
                             float(self.learning_rate), new_rate)
            self.learning_rate.assign(new_rate)
            self.optimizer.learning_rate.assign(new_rate)
            self.bad_vals.assign(0)

    # -- loop ------------------------------------------------------------------------------
    def fit(self):
        """Trains to `config.steps`, or until a signal or the time budget of any worker stops
        all of them after the current step with a checkpoint; returns the step reached."""
        config = self.config
        self.restore_or_initialize()
        self.write_config()
        validation = load_validation(config, self.task)
        iterator = self.dataset()
        train_step = self._train_step_fn()
        writer = tf.summary.create_file_writer(os.path.join(self.output_dir, "train"))
        logging.info("training on %d device(s), unrolling %s, levels %s",
                     self.strategy.num_replicas_in_sync, config.unrolling, config.levels())
        start_step, start_time = int(self.step), time.time()
        saved_at = start_time
        if config.lr_schedule == "cosine":
            self._follow_cosine()  # the phase starts at the schedule's rate, not the checkpoint's
        self.history.append("phase", start_step, precision=self.precision,
                            machine=history.machine(), learning_rate=float(self.learning_rate),
                            train_seconds=self.history.train_seconds,
                            config=dataclasses.asdict(config))
        losses = []
        progress = Progress(config.steps, start_step, "train",
                            max_seconds=60 * config.max_minutes)
        with StopRequest() as stop_request:
            try:
                while int(self.step) < config.steps:
                    loss = self._train_one_step(train_step, iterator, writer)
                    losses.append(loss)
                    step = int(self.step)
                    if step % config.log_every == 0:
                        progress.update(step, f"loss {loss:.5f} lr {float(self.learning_rate):.0e}")
                    if step % config.val_every == 0:
                        self._log_validation(validation, writer, step)
                    out_of_time = (config.max_minutes > 0
                                   and time.time() - start_time > 60 * config.max_minutes)
                    if out_of_time:
                        logging.info("time budget of %g min reached", config.max_minutes)
                    save_due, stop = self._on_any_worker(
                        time.time() - saved_at > 60 * config.checkpoint_minutes,
                        out_of_time or stop_request.requested)
                    if step % config.checkpoint_every == 0 or save_due:
                        self._save(losses, start_time)
                        saved_at = time.time()
                    if stop:
                        break
                if losses:
                    self._save(losses, start_time)
                self.export_weights()
            finally:
                writer.close()
                if not self.is_chief:
                    shutil.rmtree(self.output_dir, ignore_errors=True)
        return int(self.step)

    def _train_one_step(self, train_step, iterator, writer):
        """Trains on one batch at the schedule's rate, counts the step and logs its scalars;
        returns the loss, or raises on a non-finite one before anything is saved."""
        if self.config.lr_schedule == "cosine":
            self._follow_cosine()
        loss = float(train_step(iterator))
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at step {int(self.step) + 1}; the run stopped without "
                f"saving, so {os.path.join(self.config.run_dir, 'ckpt')} keeps the last good "
                "checkpoints; resume with a lower --set_learning_rate (a resume keeps the "
                "checkpoint's rate otherwise)")
        self.step.assign_add(1)
        with writer.as_default(step=int(self.step)):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", float(self.learning_rate))
        return loss

    def _save(self, losses, start_time):
        """Checkpoints, then records the losses since the last record in the history, so that
        the history never runs ahead of the checkpoints a resume starts from."""
        step = int(self.step)
        self.manager.save(checkpoint_number=step)
        self.history.append(
            "train", step, loss=float(np.mean(losses)), learning_rate=float(self.learning_rate),
            train_seconds=round(self.history.train_seconds + time.time() - start_time, 1))
        losses.clear()

    def _log_validation(self, validation, writer, step):
        results = self.validate(validation)
        val_loss = float(np.mean([r[0] for r in results.values()]))
        self._plateau(val_loss)
        symbol = self.task.level_symbol
        text = " ".join(f"{symbol}{level:g}:{r[1]:.2f}dB" for level, r in results.items())
        row = {"loss": val_loss, "psnr": {f"{level:g}": r[1] for level, r in results.items()}}
        if self.config.ema_decay:
            averaged = self.validate(validation, self.ema_model)
            row["loss_ema"] = float(np.mean([r[0] for r in averaged.values()]))
            row["psnr_ema"] = {f"{level:g}": r[1] for level, r in averaged.items()}
            text += " | EMA " + " ".join(f"{r[1]:.2f}" for r in averaged.values())
        logging.info(f"validation at step {step}: loss {val_loss:.6f} {text}")
        self.history.append("val", step, **row)
        with writer.as_default(step=step):
            tf.summary.scalar("val/loss", val_loss)
            for level, (_, psnr, out, degraded, clean) in results.items():
                tf.summary.scalar(f"val/psnr_{level:g}", psnr)
                panel = np.concatenate([degraded, out, clean], axis=1)
                tf.summary.image(f"val/sample_{level:g}", np.clip(panel, 0, 1)[None])
            for level, psnr in row.get("psnr_ema", {}).items():
                tf.summary.scalar(f"val_ema/psnr_{level}", psnr)

    def export_weights(self):
        """Writes the restorer and, with a moving average, its averaged twin in the shipped
        format (weights + card) into the run folder."""
        card = {"task": self.config.task, "training": dataclasses.asdict(self.config),
                "train_steps": int(self.step)}
        restorer_io.save_restorer(self.model, os.path.join(self.output_dir, "restorer"), card)
        if self.config.ema_decay:
            restorer_io.save_restorer(self.ema_model, os.path.join(self.output_dir, "restorer_ema"),
                                dict(card, weights="exponential moving average"))
