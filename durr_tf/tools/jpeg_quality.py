"""A no-reference JPEG quality estimate from blockiness, for the blind deblocking stop rule.

Blockiness is the mean absolute step across the 8×8 block boundaries of the JPEG grid divided
by the mean step everywhere else: about 1 for a clean image, rising as the quality factor
falls. The ratio ignores gain and offset, so it reads the same on the studio-swing Y that
restore computes from a decoded color JPEG. `BLOCKINESS_TO_QUALITY` is its median over the
training set at each QF, measured by

    python -m durr_tf.tools.jpeg_quality --set Train400 --out docs/results/jpeg_blockiness.json

(PIL JPEG of the 8-bit Y channel, as in evaluation). Single images scatter around the median
(at QF 10, 80% of Train400 lie in 1.8–3.2), so the estimate is rough; the refined map it feeds
changes N by one step per ~5 QF."""

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
