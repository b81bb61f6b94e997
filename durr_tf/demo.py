"""The README's first command: blind denoising of bundled sample photos with the shipped model.

    python -m durr_tf.demo --out demo [--stop estimate]

Prints σ, the steps used and PSNR before and after; writes demo.md, demo.json and demo.png
(`durr_tf.inference.demo`).
"""

from absl import app, flags

from durr_tf.core import restorer_io, stop_rules, tasks
from durr_tf.inference.demo import run_demo

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("out", "demo", "Output folder for demo.md, demo.json and demo.png.", **into)
    flags.DEFINE_list("sigmas", ["25", "50", "75"], "Noise levels σ (0–255 scale).", **into)
    flags.DEFINE_string("restorer", "", "Restorer prefix (default: the shipped denoiser).", **into)
    flags.DEFINE_string("stop", None, "Blind stop rule: learned (the shipped policy, which "
                        "belongs to the shipped denoiser), dqn:PATH, estimate, decorrelation, "
                        "fixed:N; default: the denoising task's.", **into)


def main(argv):
    del argv
    cell, card = restorer_io.load_restorer(FLAGS.restorer or "denoise")
    rule = stop_rules.parse_stop_rule(FLAGS.stop or tasks.get("denoise").default_stop, "denoise")
    table = run_demo(cell, rule, [int(s) for s in FLAGS.sigmas], FLAGS.out)
    print(table)
    print(f"\nwrote {FLAGS.out}/demo.png (noisy | restored per σ), demo.md, demo.json")


if __name__ == "__main__":
    define_flags()
    app.run(main)
