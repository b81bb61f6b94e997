"""Runs the benchmark's methods into OUT's cache, then writes its tables and figures.

    python -m durr_tf.tools.benchmark --out docs/results/benchmark [--limit 17 | --quick] \
        [--readme docs/results.md]

The method tables may use the first --limit images of each set; the peer check always uses the
whole sets. Results are cached in OUT/cache as each is done, so methods may run in separate
processes into the same OUT (BM3D is single-threaded: `--methods BM3D,CBM3D --noreport` beside
the rest) and the report stage, run last, reads them all.
"""

import os
import sys

from absl import app, flags

from durr_tf.tools.benchmark import figures, methods, report

QUICK_IMAGES = 2
FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("out", "results/benchmark",
                        "Output folder (cache, JSON, Markdown, PNG).", **into)
    flags.DEFINE_list("methods", list(methods.METHODS),
                      f"Methods to run: {', '.join(methods.METHODS)}.", **into)
    flags.DEFINE_bool("quick", False, f"Only the first {QUICK_IMAGES} images of each set.",
                      **into)
    flags.DEFINE_integer("limit", 0, "Only the first N images of each set (0 = all).", **into)
    flags.DEFINE_bool("peer_check", True, "Also run DnCNN-B and DnCNN-3 at the levels of their "
                      "published figures on the whole sets (off with --quick).", **into)
    flags.DEFINE_bool("report", True, "Build tables and figures after running the methods.",
                      **into)
    flags.DEFINE_string("readme", "", "Also write the results section between the markers of "
                        "this page (docs/results.md).", **into)
    flags.DEFINE_integer("seed", 0, "Seed of the degradations.", **into)
    flags.DEFINE_string("peers_dir", os.environ.get("DURR_PEERS_DIR", ""),
                        "Folder of the peers' released weights (default: DURR_PEERS_DIR).",
                        **into)
    flags.DEFINE_string("data_dir", "",
                        "Folder holding the datasets (else DURR_DATA_DIR, cache).", **into)
    flags.DEFINE_string("ablation", "", "Output folder of durr_tf.tools.ablation, whose table and "
                        "figure join the --readme section.", **into)


def main(argv):
    del argv
    unknown = set(FLAGS.methods) - set(methods.METHODS)
    if unknown:
        raise app.UsageError(f"unknown methods {sorted(unknown)}; "
                             f"known: {', '.join(methods.METHODS)}")
    limit = QUICK_IMAGES if FLAGS.quick else FLAGS.limit
    data_dir = FLAGS.data_dir or None
    methods.run_methods(FLAGS.out, FLAGS.methods, limit, FLAGS.seed, FLAGS.peers_dir, data_dir)
    if FLAGS.peer_check and not FLAGS.quick:
        methods.run_peer_check(FLAGS.out, FLAGS.methods, FLAGS.seed, FLAGS.peers_dir, data_dir)
    if FLAGS.report:
        command = "python -m durr_tf.tools.benchmark " + " ".join(sys.argv[1:])
        results = methods.collect(FLAGS.out, limit, FLAGS.seed, data_dir)
        checks = methods.peer_check(FLAGS.out, FLAGS.seed, data_dir)
        counts = methods.parameters()
        figures.draw(results, FLAGS.out, limit, FLAGS.seed, FLAGS.peers_dir, data_dir)
        print(report.write(FLAGS.out, command, FLAGS.seed, results, checks, counts,
                           FLAGS.readme or None, FLAGS.ablation))
        print(f"wrote {FLAGS.out}/results.json, results.md and figures")


if __name__ == "__main__":
    define_flags()
    app.run(main)
