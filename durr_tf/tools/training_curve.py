"""Validation PSNR against training time of one run, or an A/B table of several:

    python -m durr_tf.tools.training_curve --run_dir runs/denoise_gray --out docs/figures/curve.png
    python -m durr_tf.tools.training_curve --compare A,B --from_step S --hours H

The curves and the table: `durr_tf.training.curves`.
"""

import json
import os

from absl import app, flags

from durr_tf.training import history
from durr_tf.training.curves import compare, compare_table, curve, level_symbol, plot

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("run_dir", "runs/denoise_gray", "Run folder of train_restorer.", **into)
    flags.DEFINE_string("out", "training_curve.png", "Figure path; JSON is written beside it.",
                        **into)
    flags.DEFINE_list("compare", [], "Instead of a curve: an A/B table of these run folders, "
                      "all resumed from one checkpoint at --from_step.", **into)
    flags.DEFINE_integer("from_step", 0, "The step the compared runs resumed from.", **into)
    flags.DEFINE_float("hours", 0.5, "Training hours after --from_step that each compared "
                       "run is judged on.", **into)
    flags.DEFINE_integer("last", 3, "Validations averaged per run in the A/B table.", **into)


def main(argv):
    del argv
    if FLAGS.compare:
        rows = compare(FLAGS.compare, FLAGS.from_step, FLAGS.hours, FLAGS.last)
        print(compare_table(rows, level_symbol(FLAGS.compare[0])))
        return
    curves = curve(FLAGS.run_dir)
    if not curves:
        raise app.UsageError(f"no validation rows in {FLAGS.run_dir}/{history.HISTORY_FILE}")
    symbol = level_symbol(FLAGS.run_dir)
    plot(curves, FLAGS.out, f"validation PSNR during training ({os.path.basename(FLAGS.run_dir)})",
         symbol)
    with open(os.path.splitext(FLAGS.out)[0] + ".json", "w") as handle:
        json.dump({"run_dir": FLAGS.run_dir, "curves": curves}, handle, indent=1)
    for level, points in curves.items():
        step, hours, value = points[-1]
        print(f"{symbol}={level}: {value:.2f} dB at step {step} ({hours:.2f} h)")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
