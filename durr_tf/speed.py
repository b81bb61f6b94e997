"""Speed of the restoration unit on this machine, as a table and JSON:

    python -m durr_tf.speed --out results/speed.json

What is timed: `durr_tf.tools.timing`. Run it on an idle machine.
"""

import os
import platform

import tensorflow as tf
from absl import app, flags

from durr_tf.core import restorer_io
from durr_tf.tools.timing import loop_milliseconds, report, train_step_seconds

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("out", "results/speed.json", "JSON output path.", **into)
    flags.DEFINE_integer("repeats", 5, "Timed repetitions per measurement (float32).", **into)
    flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precisions to time.", **into)


def main(argv):
    del argv
    rows = []
    for precision in FLAGS.precisions:
        # bfloat16 without native CPU support is many times slower: time it on N=4 only.
        repeats = FLAGS.repeats if precision == "float32" else 1
        for n in (4, 8, 12) if precision == "float32" else (4,):
            rows.append({"what": f"train step, batch 24×64×64, N={n}", "precision": precision,
                         "ms": 1000 * train_step_seconds(precision, n, repeats)})
        rows.append({"what": "inference, one loop on 481×321", "precision": precision,
                     "ms": loop_milliseconds(precision, 321, 481, repeats)})
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "tensorflow": tf.__version__, "parameters": restorer_io.build(1).count_params()}
    report(rows, {"measurement": lambda r: r["what"], "precision": lambda r: r["precision"],
                  "ms": lambda r: f"{r['ms']:.0f}"}, info, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main)
