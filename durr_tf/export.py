"""Exports the SavedModel that TF Serving loads (restorer, stop rule and loop in one graph):

    python -m durr_tf.export --task denoise --out models/durr_denoise --version 1 \\
        [--stop dqn:runs/dqn_denoise/policy | estimate | decorrelation | fixed:N] \\
        [--precision auto | float32 | mixed_bfloat16 | mixed_float16]

The signatures and their checks: `durr_tf.inference.serving`.
"""

from absl import app, flags

from data.images import DEFAULT_MAX_PIXELS
from durr_tf.core import precision, restorer_io, stop_rules, tasks, unroll
from durr_tf.inference.serving import export

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_string("out", None, "Model base folder (TF Serving's model_base_path).", **into)
    flags.DEFINE_integer("version", 1, "Version subfolder.", **into)
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).",
                        **into)
    flags.DEFINE_string("stop", None, "Stop rule: learned, dqn:PATH, estimate, handcrafted, "
                        "decorrelation, fixed:N; "
                        "default: the task's blind rule.", **into)
    flags.DEFINE_integer("max_steps", unroll.DEFAULT_MAX_STEPS, "Hard bound on the loop.", **into)
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS,
                         "restore_bytes refuses images with more pixels than this.", **into)
    flags.DEFINE_enum("precision", "auto", precision.FLAG_CHOICES,
                      "Compute precision of the U-Net, fixed in the served graph; auto: the "
                      "choice for this machine (export on the kind of machine that serves).",
                      **into)
    flags.mark_flag_as_required("out", **into)


def main(argv):
    del argv
    task = tasks.get(FLAGS.task)
    compute = precision.resolve(FLAGS.precision)
    cell, _ = restorer_io.load_restorer(FLAGS.restorer or task.name, compute)
    rule = stop_rules.parse_stop_rule(FLAGS.stop or task.default_stop, task.name)
    path = export(cell, rule, FLAGS.out, FLAGS.version, FLAGS.max_steps, task.color_mode,
                  FLAGS.max_pixels)
    print(f"wrote {path} (signatures serving_default, restore_uint8, restore_bytes; "
          f"U-Net in {compute})")


if __name__ == "__main__":
    define_flags()
    app.run(main)
