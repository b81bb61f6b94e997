"""Trains the restoration unit: python -m durr_tf.train_restorer --task denoise --run_dir DIR.

Flags map one-to-one onto `durr_tf.training.trainer.TrainConfig`; `--smoke` shrinks everything to a
seconds-long run for tests. Re-running with the same --run_dir resumes from its checkpoint.
With TF_CONFIG naming a cluster, every worker runs this same command and they train as one
(docs/training_at_scale.md).
"""

import dataclasses

from absl import app, flags

from durr_tf.core import precision, tasks
from durr_tf.training import trainer

FLAGS = flags.FLAGS
_DEFAULTS = trainer.TrainConfig()


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags (only when run as a program, so modules import cleanly;
    a test reads their names from a FlagValues of its own)."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", _DEFAULTS.task, list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_enum("unrolling", _DEFAULTS.unrolling, ["refined", "naive"],
                      "Euler steps per training batch: refined (the paper's level -> N map) or "
                      "naive (--naive_steps for every level).", **into)
    flags.DEFINE_alias("policy", "unrolling", **into)  # the name in commands of older model cards
    flags.DEFINE_integer("naive_steps", _DEFAULTS.naive_steps, "N of the naive unrolling.", **into)
    flags.DEFINE_string("train_set", "",
                       "Registered set names or image folders, comma-separated (default: the "
                       "task's), e.g. Train400,CBSD432.", **into)
    flags.DEFINE_list("train_levels", [],
                      "Training levels (default: the task's, e.g. 25,35,45,55).", **into)
    flags.DEFINE_string("val_set", "",
                       "Validation set name or image folder (default: the task's).", **into)
    flags.DEFINE_string("data_dir", _DEFAULTS.data_dir, "Folder holding the datasets.", **into)
    flags.DEFINE_string("run_dir", _DEFAULTS.run_dir, "Run folder (checkpoints, logs, weights).",
                        **into)
    flags.DEFINE_integer("steps", _DEFAULTS.steps, "Total training steps (batches).", **into)
    flags.DEFINE_float("max_minutes", _DEFAULTS.max_minutes, "Wall-time budget; 0 = none.", **into)
    flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Patches per batch.", **into)
    flags.DEFINE_integer("patch_size", _DEFAULTS.patch_size, "Patch side in pixels.", **into)
    flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Initial Adam learning rate.",
                       **into)
    flags.DEFINE_float("set_learning_rate", _DEFAULTS.set_learning_rate,
                       "If > 0, replaces the learning rate restored on resume (a manual drop).",
                       **into)
    flags.DEFINE_integer("val_every", _DEFAULTS.val_every, "Steps between validations.", **into)
    flags.DEFINE_integer("plateau_patience", _DEFAULTS.plateau_patience,
                         "Validations without a new best before the learning rate is divided "
                         "by 10 (more for a noisy validation set).", **into)
    flags.DEFINE_enum("lr_schedule", _DEFAULTS.lr_schedule, ["plateau", "cosine"],
                      "plateau: divide the rate by 10 when validation stalls; cosine: decay it "
                      "from --learning_rate to --min_learning_rate over --decay_steps steps "
                      "from step --decay_start, then hold it.", **into)
    flags.DEFINE_integer("decay_start", _DEFAULTS.decay_start,
                         "Step at which the cosine decay starts; a resume passes the same.", **into)
    flags.DEFINE_integer("decay_steps", _DEFAULTS.decay_steps, "Steps of the cosine decay.", **into)
    flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                         "Steps between checkpoints.", **into)
    flags.DEFINE_float("checkpoint_minutes", _DEFAULTS.checkpoint_minutes,
                       "Also checkpoint when this many minutes passed since the last one.", **into)
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the data stream.", **into)
    flags.DEFINE_enum("precision", _DEFAULTS.precision, precision.FLAG_CHOICES,
                      "Compute precision of the U-Net (iterates stay float32); auto: mixed "
                      "bfloat16 on CPUs with native bfloat16, mixed float16 on tensor-core "
                      "GPUs, else float32.", **into)
    flags.DEFINE_float("ema_decay", _DEFAULTS.ema_decay,
                       "Decay of the weights' exponential moving average, validated and saved "
                       "beside the weights (restorer_ema.*); 0 = none.", **into)
    flags.DEFINE_integer("devices", _DEFAULTS.devices,
                         "Devices for MirroredStrategy on this host (under TF_CONFIG, each "
                         "worker uses all the GPUs it sees).", **into)
    flags.DEFINE_bool("smoke", False, "Tiny configuration for tests (a few seconds).", **into)


def config_from_flags():
    values = {field.name: FLAGS[field.name].value
              for field in dataclasses.fields(trainer.TrainConfig) if field.name in FLAGS}
    values["train_levels"] = tuple(float(v) for v in FLAGS.train_levels)
    if FLAGS.smoke:
        values.update({k: v for k, v in trainer.SMOKE.items() if k not in FLAGS or not FLAGS[k].present})
    return trainer.TrainConfig(**values)


def main(argv):
    del argv
    config = config_from_flags()
    steps = trainer.Trainer(config).fit()
    print(f"stopped at step {steps}; weights in {config.run_dir}/restorer.weights.h5")


if __name__ == "__main__":
    define_flags()
    app.run(main)
