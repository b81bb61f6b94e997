"""Scores stop rules on a set and writes Markdown + JSON tables and figures:

    python -m durr_tf.evaluate --task denoise --set BSD68 --sigmas 25,35,45,55,65,75 \\
        --stop oracle,refined,fixed:8 --out results/bsd68

How a set is degraded and the rules are scored: `durr_tf.evaluation.evaluator`.
"""

import sys

from absl import app, flags

from data import sets
from durr_tf.core import precision, restorer_io, tasks, unroll
from durr_tf.evaluation.evaluator import evaluate, write_results

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_enum("task", "denoise", list(tasks.TASKS), "Restoration task.", **into)
    flags.DEFINE_string("set", "BSD68", "Registered set name or a folder of clean images.", **into)
    flags.DEFINE_string("data_dir", "", "Folder holding the datasets (else DURR_DATA_DIR, cache).",
                        **into)
    flags.DEFINE_list("sigmas", [], "Noise levels σ (0–255 scale); default: the task's table.",
                      **into)
    flags.DEFINE_list("qf", [], "JPEG quality factors (deblock); default: the task's table.",
                      **into)
    flags.DEFINE_list("stop", ["oracle"],
                      "Stop rules: oracle, learned, dqn:PATH, refined, estimate, handcrafted, "
                      "decorrelation, fixed:N.", **into)
    flags.DEFINE_integer("limit", 0, "Evaluate only the first N images (0 = all).", **into)
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped model of the task).",
                        **into)
    flags.DEFINE_integer("max_steps", unroll.DEFAULT_MAX_STEPS, "Hard bound on the unrolling.",
                         **into)
    flags.DEFINE_integer("seed", 0, "Seed of the degradations.", **into)
    flags.DEFINE_enum("precision", "float32", precision.FLAG_CHOICES,
                      "Compute precision of the U-Net; auto: the choice for this machine.", **into)
    flags.DEFINE_string("out", "results/evaluate", "Output folder for JSON, Markdown and figures.",
                        **into)


def main(argv):
    del argv
    task = tasks.get(FLAGS.task)
    files = sets.resolve(FLAGS.set, FLAGS.data_dir or None)
    files = files[: FLAGS.limit] if FLAGS.limit else files
    levels = [float(v) for v in FLAGS.sigmas or FLAGS.qf] or list(task.eval_levels)
    compute = precision.resolve(FLAGS.precision)
    cell, card = restorer_io.load_restorer(FLAGS.restorer or task.name, compute)
    results = evaluate(cell, task, files, levels, FLAGS.stop, FLAGS.max_steps, seed=FLAGS.seed)
    results.update(set=FLAGS.set, restorer=FLAGS.restorer or f"shipped:{task.name}",
                   precision=compute,
                   command="python -m durr_tf.evaluate " + " ".join(sys.argv[1:]))
    title = f"{FLAGS.set} ({len(files)} images)"
    print(write_results(results, FLAGS.out, title))
    print(f"wrote {FLAGS.out}/results.json, results.md and figures")


if __name__ == "__main__":
    define_flags()
    app.run(main)
