"""Ships a finished training run as a restorer (weights + JSON card) in durr_tf/pretrained:

    python -m durr_tf.ship --run_dir runs/denoise_gray --results results/bsd68/results.json

What the card records: `durr_tf.training.cards`.
"""

from absl import app, flags

from durr_tf.training.cards import ship

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("run_dir", "runs/denoise_gray", "Finished run of train_restorer.", **into)
    flags.DEFINE_string("results", "results/bsd68/results.json", "evaluate's JSON for the card.",
                        **into)
    flags.DEFINE_string("name", "denoise_gray", "File name of the shipped model.", **into)
    flags.DEFINE_string("out_dir", None, "Where to write it (default: durr_tf/pretrained).", **into)
    flags.DEFINE_enum("weights", "restorer", ["restorer", "restorer_ema"],
                      "Which weights of the run: as trained, or their moving average (ship "
                      "the one that evaluates better).", **into)


def main(argv):
    del argv
    prefix = ship(FLAGS.run_dir, FLAGS.results, FLAGS.name, FLAGS.out_dir, FLAGS.weights)
    print(f"shipped {prefix}.weights.h5 and {prefix}.json")


if __name__ == "__main__":
    define_flags()
    app.run(main)
