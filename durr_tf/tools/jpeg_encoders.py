"""How TensorFlow's JPEG encoder (used in training) differs from PIL's (used in evaluation).

    python -m durr_tf.tools.jpeg_encoders --set LIVE1 --out results/jpeg_encoders.json

For each QF, on the 8-bit Y channel of every image: the share of pixels whose decoded values
differ, the largest difference in gray levels, and the mean PSNR of each encoder's output.
"""

import json
import os

import numpy as np
from absl import app, flags

from data import degradations, sets
from durr_tf.evaluation import metrics
from durr_tf.core import tasks


def compare(files, qualities):
    task = tasks.get("deblock")
    rows = []
    cleans = [task.read_clean(path) for path in files]
    for quality in qualities:
        shares, largest, pil_psnr, tf_psnr = [], 0.0, [], []
        for clean in cleans:
            pil = degradations.jpeg_pil(clean, quality)
            tf_jpeg = degradations.jpeg_tf(clean[None], quality).numpy()[0]
            difference = np.abs(np.round(pil * 255) - np.round(tf_jpeg * 255))
            shares.append(float(np.mean(difference > 0)))
            largest = max(largest, float(difference.max()))
            pil_psnr.append(metrics.psnr(pil, clean))
            tf_psnr.append(metrics.psnr(tf_jpeg, clean))
        rows.append({"qf": quality, "pixels_differing": float(np.mean(shares)),
                     "max_gray_levels": largest, "psnr_pil": float(np.mean(pil_psnr)),
                     "psnr_tf": float(np.mean(tf_psnr))})
    return rows


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("set", "LIVE1", "Registered set name or a folder of images.", **into)
    flags.DEFINE_string("data_dir", "", "Folder holding the datasets.", **into)
    flags.DEFINE_list("qf", ["10", "20", "30", "40"], "Quality factors.", **into)
    flags.DEFINE_string("out", "results/jpeg_encoders.json", "JSON output path.", **into)


def main(argv):
    del argv
    files = sets.resolve(FLAGS.set, FLAGS.data_dir or None)
    rows = compare(files, [int(q) for q in FLAGS.qf])
    print(f"{FLAGS.set}, {len(files)} images, Y channel\n"
          "| QF | pixels differing | max difference (gray levels) | PSNR PIL | PSNR tf.io |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['qf']} | {100 * r['pixels_differing']:.1f}% | {r['max_gray_levels']:.0f} | "
              f"{r['psnr_pil']:.2f} | {r['psnr_tf']:.2f} |")
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as handle:
        json.dump({"set": FLAGS.set, "images": len(files), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
