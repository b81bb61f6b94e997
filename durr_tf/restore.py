"""Restores image files or folders: `python -m durr_tf.restore IN... --out DIR`.

The behaviour (color and alpha handling, 16-bit files, folders, never overwriting) is that of
`durr_tf.inference.restorer`.
"""

import sys

from absl import app, flags

from durr_tf.core import precision, restorer_io, stop_rules, tasks, tiling, unroll
from durr_tf.inference.restorer import (
    Restorer,
    check_out_folder,
    collect_inputs,
    restore_files,
)

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_string("out", "restored", "Folder to write the restored images into.", **into)
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).",
                        **into)
    flags.DEFINE_string("stop", None, "Stop rule: learned (the shipped policy), dqn:PATH, "
                        "estimate (σ or JPEG quality estimated from the input), handcrafted, "
                        "decorrelation, refined (with --level), fixed:N; default: the task's.",
                        **into)
    flags.DEFINE_float("level", None, "Known degradation level (σ or QF) for --stop refined.",
                       **into)
    flags.DEFINE_integer("max_steps", unroll.DEFAULT_MAX_STEPS, "Hard bound on the unrolling.",
                         **into)
    flags.DEFINE_integer("max_pixels", None, "Refuse images with more pixels than this.", **into)
    flags.DEFINE_integer("tile", tiling.TILE, "Images over tile² pixels are restored in "
                         "overlapping tiles of this side (a multiple of 4), bounding memory.",
                         **into)
    flags.DEFINE_bool("overwrite", False, "Replace outputs that already exist.", **into)
    flags.DEFINE_enum("precision", "auto", precision.FLAG_CHOICES,
                      "Compute precision of the U-Net; auto: the choice for this machine "
                      "(mixed bfloat16 on CPUs that compute it natively: at most 0.004 dB lost).",
                      **into)


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give at least one image file or folder to restore")
    check_out_folder(FLAGS.out)
    task = tasks.get(FLAGS.task)
    cell, _ = restorer_io.load_restorer(FLAGS.restorer or task.name, precision.resolve(FLAGS.precision))
    rule = stop_rules.parse_stop_rule(FLAGS.stop or task.default_stop, task.name, FLAGS.level)
    restorer = Restorer(cell, rule, FLAGS.max_steps, task.color_mode, FLAGS.tile)
    files = collect_inputs(argv[1:])
    failures = restore_files(restorer, files, FLAGS.out, FLAGS.overwrite, FLAGS.max_pixels)
    print(f"restored {len(files) - len(failures)} of {len(files)} file(s) into {FLAGS.out}")
    if failures:
        print(f"{len(failures)} file(s) failed:", file=sys.stderr)
        for path, error in failures.items():
            print(f"  {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
