"""Trains the stop policy: python -m agents.train_dqn --task denoise --restorer PATH.

Flags map onto `agents.dqn.DqnConfig`; `--smoke` is a seconds-long configuration for tests.
Re-running with the same --run_dir resumes from its checkpoint.
"""

import dataclasses

import agents  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads Keras)
from absl import app, flags

from agents import dqn
from durr_tf.core import tasks

FLAGS = flags.FLAGS
_DEFAULTS = dqn.DqnConfig()


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags (only when run as a program, so modules import cleanly;
    `agents.ship_policy` reads their names from a FlagValues of its own)."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", _DEFAULTS.task, list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_string("restorer", _DEFAULTS.restorer, "Frozen restorer (default: shipped).",
                        **into)
    flags.DEFINE_string("train_set", "",
                        "Registered set name or image folder (default: the task's).", **into)
    flags.DEFINE_string("data_dir", _DEFAULTS.data_dir, "Folder holding the datasets.", **into)
    flags.DEFINE_string("run_dir", _DEFAULTS.run_dir, "Run folder (checkpoints, logs, policy).",
                        **into)
    flags.DEFINE_integer("iterations", _DEFAULTS.iterations, "Training iterations.", **into)
    flags.DEFINE_enum("env", _DEFAULTS.env, list(dqn.ENVIRONMENTS),
                      "Training environment: cached (replays trajectories computed once, fast) "
                      "or live (runs the restorer at every step).", **into)
    flags.DEFINE_integer("episodes", _DEFAULTS.episodes, "Training patches.", **into)
    flags.DEFINE_integer("patch_size", _DEFAULTS.patch_size, "Side of the training patches.",
                         **into)
    flags.DEFINE_integer("crop_size", _DEFAULTS.crop_size, "Side of the crops the Q-network "
                         "reads (0: the patch size).", **into)
    flags.DEFINE_list("level_range", [], "low,high: draw the episodes' σ or QF from this "
                      "range instead of the restorer's training range.", **into)
    flags.DEFINE_integer("level_count", _DEFAULTS.level_count, "Levels the episodes are drawn "
                         "from, spread evenly over the range.", **into)
    flags.DEFINE_integer("max_steps", _DEFAULTS.max_steps, "Episode step limit.", **into)
    flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "RMSprop learning rate.",
                       **into)
    flags.DEFINE_integer("sequence_length", _DEFAULTS.sequence_length,
                         "Steps per replayed sequence (the LSTM is unrolled over them).", **into)
    flags.DEFINE_bool("double_q", _DEFAULTS.double_q, "Double DQN targets.", **into)
    flags.DEFINE_integer("pretrain_iterations", _DEFAULTS.pretrain_iterations,
                         "Supervised batches before DQN, per pretraining stage (0: none).",
                         **into)
    flags.DEFINE_enum("pretrain_network", _DEFAULTS.pretrain_network,
                      list(dqn.PRETRAINED_NETWORKS),
                      "What the pretraining fits: the encoder, to single iterates' remaining "
                      "gain, or (q_network) that and then the LSTM and head, to whole "
                      "trajectories' optimal Q-values.", **into)
    flags.DEFINE_bool("image_statistics", _DEFAULTS.image_statistics,
                      "The Q-network also reads the whole image's noise σ and JPEG blockiness, "
                      "as the blind rules do.", **into)
    flags.DEFINE_bool("read_quality", _DEFAULTS.read_quality,
                      "With --image_statistics: also the JPEG quality factor read off the "
                      "image's quantization table (0 where none fits).", **into)
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed.", **into)
    flags.DEFINE_bool("smoke", False, "Tiny configuration for tests (a few seconds).", **into)


def flag_names():
    """The names of the command's flags."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    return set(flag_values)


def main(argv):
    del argv
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(dqn.DqnConfig)
              if f.name in FLAGS}
    if FLAGS.smoke:
        values.update({key: value for key, value in dqn.SMOKE.items()
                       if key not in FLAGS or not FLAGS[key].present})
    values["level_range"] = tuple(float(v) for v in values["level_range"])
    if len(values["level_range"]) not in (0, 2):
        raise app.UsageError("--level_range takes two values: low,high")
    config = dqn.DqnConfig(**values)
    iterations = dqn.DqnTrainer(config).fit()
    print(f"stopped at iteration {iterations}; policy in {config.run_dir}/policy")


if __name__ == "__main__":
    define_flags()
    app.run(main)
