"""Training the restoration unit under a training policy (refined or naive).

Run folder layout: `config.json` (the resolved configuration), `ckpt/` (model, optimizer,
step, plateau state; a killed run resumes from the latest), `train/` (TensorBoard), and at the
end `restorer.weights.h5` + `restorer.json`, the format `durr_tf.model.load_restorer` reads.
"""

import dataclasses
import json
import math
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from data import pipelines, sets
from durr_tf import metrics, model, policies, tasks, unet, unroll
from durr_tf.progress import Progress


@dataclasses.dataclass
class TrainConfig:
    task: str = "denoise"
    policy: str = "refined"  # "refined": level -> N by the paper's map; "naive": fixed N
    naive_steps: int = 8
    train_set: str = ""  # a registered set or a folder of images; empty: the task's
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
    plateau_patience: int = 4  # validations without improvement before lr /= 10
    val_every: int = 200
    checkpoint_every: int = 100
    checkpoint_minutes: float = 10.0  # also save when this much wall time passed since the last
    log_every: int = 20
    seed: int = 0
    precision: str = "float32"  # or "mixed_bfloat16" (iterates stay float32)
    devices: int = 1  # >1: MirroredStrategy over that many devices (GPUs, else logical CPUs)
    widths: tuple = unet.WIDTHS

    def __post_init__(self):
        task = tasks.get(self.task)
        self.train_set = self.train_set or task.train_set
        self.val_set = self.val_set or task.val_set

    def levels(self):
        return tuple(self.train_levels) or tasks.get(self.task).train_levels


SMOKE = dict(steps=6, batch_size=4, patch_size=32, val_images=2, val_crop=32, val_every=3,
             checkpoint_every=2, log_every=1)


def make_strategy(devices):
    """One device by default; MirroredStrategy over GPUs, or else over logical CPU devices.

    Splitting the CPU must happen before TensorFlow initialises its devices, so a process that
    wants a multi-device CPU run must create the trainer before running any TF op.
    """
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
    """The training policy: how many Euler steps a batch of this level is unrolled."""
    if config.policy == "naive":
        return tf.constant(config.naive_steps, tf.int32)
    if config.policy == "refined":
        return policies.refined_steps(tasks.get(config.task).refined_map, levels[0])
    raise ValueError(f"unknown training policy {config.policy!r} (refined or naive)")


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
    """Owns the model, optimizer, checkpoint and loop for one run folder."""

    def __init__(self, config):
        self.config = config
        self.task = tasks.get(config.task)
        os.makedirs(config.run_dir, exist_ok=True)
        self.strategy = make_strategy(config.devices)
        keras.utils.set_random_seed(config.seed)  # same seed, same initial weights
        with self.strategy.scope():
            self.model = model.build(self.task.channels, config.widths, config.precision)
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            # Slots exist before restoring or tracing, so checkpoints restore them and the
            # replicas never create variables inside the step.
            self.optimizer.build(self.model.trainable_variables)
        # Loop bookkeeping lives outside the strategy: read on the host, never mirrored.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_val = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.bad_vals = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.learning_rate = tf.Variable(config.learning_rate, dtype=tf.float64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step, best_val=self.best_val,
            bad_vals=self.bad_vals, learning_rate=self.learning_rate)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(config.run_dir, "ckpt"), max_to_keep=3)
        self._stop_requested = False

    # -- setup -----------------------------------------------------------------------------
    def restore_or_initialize(self):
        """Resumes from the latest checkpoint of the run folder, if there is one."""
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            print(f"resumed from {self.manager.latest_checkpoint} at step {int(self.step)}",
                  flush=True)
        if self.config.set_learning_rate > 0:
            # A manual drop also restarts the plateau watch, measured from the new rate.
            print(f"learning rate set to {self.config.set_learning_rate:.0e}", flush=True)
            self.learning_rate.assign(self.config.set_learning_rate)
            self.best_val.assign(np.inf)
            self.bad_vals.assign(0)
        self.optimizer.learning_rate.assign(float(self.learning_rate))

    def write_config(self):
        with open(os.path.join(self.config.run_dir, "config.json"), "w") as handle:
            json.dump(dataclasses.asdict(self.config), handle, indent=2)

    def dataset(self):
        files = sets.resolve(self.config.train_set, self.config.data_dir or None)
        images = pipelines.load_training_images(files, self.task.channels, self.config.patch_size,
                                                prepare=self.task.prepare_clean)
        data = pipelines.patch_dataset(
            images, self.task.degrader(self.config.levels()), self.config.patch_size,
            self.config.batch_size, self.config.seed, start_batch=int(self.step))
        return iter(self.strategy.experimental_distribute_dataset(data))

    # -- steps -----------------------------------------------------------------------------
    def _train_step_fn(self):
        config, model_, optimizer = self.config, self.model, self.optimizer
        global_batch = config.batch_size

        def replica_step(degraded, clean, levels):
            steps = steps_for_levels(config, levels)
            with tf.GradientTape() as tape:
                out = unroll.unroll_fixed(model_, degraded, steps, training=True)
                per_image = tf.reduce_mean(tf.square(out - clean), axis=[1, 2, 3])
                loss = tf.reduce_sum(per_image) / global_batch
            grads = tape.gradient(loss, model_.trainable_variables)
            optimizer.apply_gradients(zip(grads, model_.trainable_variables))
            return loss

        @tf.function
        def train_step(iterator):
            batch = next(iterator)
            losses = self.strategy.run(replica_step, args=batch)
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return train_step

    def validate(self, batches):
        """Mean MSE and PSNR per level after the training policy's N steps."""
        results = {}
        for level, degraded, clean in batches:
            steps = steps_for_levels(self.config, tf.constant([level]))
            out = unroll.unroll_fixed(self.model, tf.constant(degraded), steps).numpy()
            results[level] = (float(np.mean((out - clean) ** 2)),
                              metrics.mean_psnr(out, clean), out[0], degraded[0], clean[0])
        return results

    def _plateau(self, val_loss):
        """Divides the learning rate by 10 after `plateau_patience` validations without gain."""
        if val_loss < float(self.best_val) * (1 - 1e-3):
            self.best_val.assign(val_loss)
            self.bad_vals.assign(0)
            return
        self.bad_vals.assign_add(1)
        if int(self.bad_vals) >= self.config.plateau_patience:
            new_rate = max(float(self.learning_rate) / 10, self.config.min_learning_rate)
            if new_rate < float(self.learning_rate):
                print(f"validation plateau: learning rate {float(self.learning_rate):.0e} -> "
                      f"{new_rate:.0e}", flush=True)
            self.learning_rate.assign(new_rate)
            self.optimizer.learning_rate.assign(new_rate)
            self.bad_vals.assign(0)

    # -- loop ------------------------------------------------------------------------------
    def _request_stop(self, signum, frame):
        print(f"signal {signum}: saving a checkpoint and stopping", flush=True)
        self._stop_requested = True

    def fit(self):
        config = self.config
        self.restore_or_initialize()
        self.write_config()
        validation = load_validation(config, self.task)
        iterator = self.dataset()
        train_step = self._train_step_fn()
        writer = tf.summary.create_file_writer(os.path.join(config.run_dir, "train"))
        previous_handler = signal.signal(signal.SIGTERM, self._request_stop)
        print(f"training on {self.strategy.num_replicas_in_sync} device(s), policy "
              f"{config.policy}, levels {config.levels()}", flush=True)
        start_step, start_time = int(self.step), time.time()
        saved_at = start_time
        progress = Progress(config.steps, start_step, "train",
                            max_seconds=60 * config.max_minutes)
        try:
            while int(self.step) < config.steps and not self._stop_requested:
                loss = float(train_step(iterator))
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss} at step {int(self.step) + 1}; the run stopped "
                        f"without saving, so {self.manager.directory} keeps the last good "
                        "checkpoints; resume with a lower --set_learning_rate (a resume keeps "
                        "the checkpoint's rate otherwise)")
                self.step.assign_add(1)
                step = int(self.step)
                with writer.as_default(step=step):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", float(self.learning_rate))
                if step % config.log_every == 0:
                    progress.update(step, f"loss {loss:.5f} lr {float(self.learning_rate):.0e}")
                if step % config.val_every == 0:
                    self._log_validation(validation, writer, step)
                if (step % config.checkpoint_every == 0
                        or time.time() - saved_at > 60 * config.checkpoint_minutes):
                    self.manager.save(checkpoint_number=step)
                    saved_at = time.time()
                if config.max_minutes and time.time() - start_time > 60 * config.max_minutes:
                    print(f"time budget of {config.max_minutes} min reached", flush=True)
                    break
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
        if int(self.step) > start_step:
            self.manager.save(checkpoint_number=int(self.step))
        self.export_weights()
        return int(self.step)

    def _log_validation(self, validation, writer, step):
        results = self.validate(validation)
        val_loss = float(np.mean([r[0] for r in results.values()]))
        self._plateau(val_loss)
        symbol = self.task.level_symbol
        text = " ".join(f"{symbol}{level:g}:{r[1]:.2f}dB" for level, r in results.items())
        print(f"  validation at step {step}: loss {val_loss:.6f} {text}", flush=True)
        with writer.as_default(step=step):
            tf.summary.scalar("val/loss", val_loss)
            for level, (_, psnr, out, degraded, clean) in results.items():
                tf.summary.scalar(f"val/psnr_{level:g}", psnr)
                panel = np.concatenate([degraded, out, clean], axis=1)
                tf.summary.image(f"val/sample_{level:g}", np.clip(panel, 0, 1)[None])

    def export_weights(self):
        """Writes the restorer in the shipped format (weights + card) into the run folder."""
        model.save_restorer(
            self.model, os.path.join(self.config.run_dir, "restorer"),
            card={"task": self.config.task, "training": dataclasses.asdict(self.config),
                  "train_steps": int(self.step)})
