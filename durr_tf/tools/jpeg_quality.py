"""Measures blockiness at each QF over a set, the calibration of the blind JPEG quality estimate:

    python -m durr_tf.tools.jpeg_quality --set Train400 --out docs/results/jpeg_blockiness.json

The estimate itself: `durr_tf.core.jpeg_quality`.
"""

import json
import os

from absl import app, flags

from data import sets
from durr_tf.core.jpeg_quality import calibrate

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("set", "Train400", "Registered set name or image folder.", **into)
    flags.DEFINE_list("qf", ["5", "10", "15", "20", "25", "30", "35", "40", "50", "60"],
                      "JPEG quality factors.", **into)
    flags.DEFINE_integer("limit", 0, "Use only the first N images (0 = all).", **into)
    flags.DEFINE_string("out", "jpeg_blockiness.json", "JSON output path.", **into)


def main(argv):
    del argv
    files = sets.resolve(FLAGS.set)
    files = files[: FLAGS.limit] if FLAGS.limit else files
    table = calibrate(files, [int(q) for q in FLAGS.qf])
    print(f"| QF | median blockiness | 10th–90th percentile |  ({len(files)} images of {FLAGS.set})")
    print("|---|---|---|")
    for quality, (median, low, high) in table.items():
        print(f"| {quality} | {median:.3f} | {low:.3f}–{high:.3f} |")
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as handle:
        json.dump({"set": FLAGS.set, "images": len(files), "blockiness": table}, handle, indent=2)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
