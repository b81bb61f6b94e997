"""Ships a trained stop policy beside its task's restorer, with a JSON card.

    python -m agents.ship_policy --run_dir runs/dqn_denoise \
        [--results docs/results/bsd68/results.json]

Copies RUN_DIR/policy (a SavedModel that needs only TensorFlow) to
durr_tf/pretrained/<restorer>_policy/ and writes card.json there: the training command and
configuration, the iteration whose policy was kept (the best on held-out training patches)
and the run's length and time, the machine it trained on, the evaluation table (from evaluate's
JSON, when given; evaluate it with `--stop learned` after a first ship), the stop margin
calibrated by `agents.calibrate` (copied with the policy; run it first, or the policy ships
greedy) and a `check` (the steps the policy chooses on the benchmark set's first images) that
the test suite recomputes.
"""

import dataclasses
import json
import os
import shutil

import agents  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads Keras)
from absl import app, flags

from agents import dqn, train_dqn
from data import sets
from durr_tf.training import history
from durr_tf.core import restorer_io, stop_rules, tasks
from durr_tf.evaluation import evaluator
from durr_tf.training import cards, curves


def training_command(config):
    """The train_dqn command line of a run: the flags whose values differ from the defaults
    (from `--smoke`'s where the run was a smoke run)."""
    defaults = dict(dataclasses.asdict(dqn.DqnConfig()), smoke=False)
    smoke = all(config.get(key) == value for key, value in dqn.SMOKE.items())
    if smoke:
        defaults.update(dqn.SMOKE)
    settings = {"smoke": smoke, **{key: value for key, value in config.items() if key != "run_dir"}}
    return cards.command_line("agents.train_dqn", settings, defaults, train_dqn.flag_names())


def training_machine(run_dir, config, destination):
    """The machines a run trained on, as its `machines.json` names them. A run from before that
    record names none: then the machine the card already in `destination` names when that card
    is of the same training (a policy shipped again after a new calibration, maybe on another
    machine), else this one, its first ship taken to be on the machine it trained on."""
    machines_path = os.path.join(run_dir, dqn.MACHINES_FILE)
    if os.path.exists(machines_path):
        with open(machines_path) as handle:
            return "; then ".join(json.load(handle))
    card_path = os.path.join(destination, "card.json")
    if os.path.exists(card_path):
        with open(card_path) as handle:
            card = json.load(handle)
        if card.get("training") == config:
            return card["machine"]
    return history.machine()


def ship_policy(run_dir, results_path=None, out_dir=None):
    with open(os.path.join(run_dir, "config.json")) as handle:
        config = json.load(handle)
    task = tasks.get(config["task"])
    destination = out_dir or restorer_io.pretrained_policy(task.name)
    staging = destination + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(os.path.join(run_dir, "policy"), staging)

    cell, _ = restorer_io.load_restorer(config["restorer"] or task.name)
    files = sets.resolve(task.benchmark_set)[:cards.CHECK_IMAGES]
    check_levels = (task.train_levels[0], task.eval_levels[-1])  # one seen, one unseen level
    check = evaluator.evaluate(cell, task, files, check_levels, [f"dqn:{staging}"])
    scalars = curves.read_scalars(os.path.join(run_dir, "train"))
    hours = curves.active_hours(scalars.get("loss", []))
    preparation = sum(value for _, _, value in scalars.get(dqn.PREPARATION_TAG, []))
    rule = stop_rules.LearnedStopRule(staging, refined_map=task.refined_map)
    with open(os.path.join(staging, "evaluation.json")) as handle:
        selected = json.load(handle)  # the held-out evaluation that chose this policy
    margin_path = os.path.join(staging, stop_rules.MARGIN_FILE)
    calibration = None  # the greedy policy (margin 0)
    if os.path.exists(margin_path):
        with open(margin_path) as handle:
            calibration = json.load(handle)
    card = {
        "task": task.name,
        "restorer": config["restorer"] or f"shipped:{task.name}",
        "command": training_command(config),
        "training": config,
        "policy_iteration": selected["iteration"],
        "held_out_evaluation": selected,
        "run_iterations": max(hours, default=0),
        "wall_time_hours": round(preparation + max(hours.values(), default=0.0), 2),
        "machine": training_machine(run_dir, config, destination),
        "parameters": rule.parameters,
        "stop_margin": calibration,  # None: the greedy policy (margin 0)
        "check": {"set": task.benchmark_set, "images": cards.CHECK_IMAGES,
                  "levels": list(check_levels),
                  "steps": {level: entry["rules"][f"dqn:{staging}"]["steps"]
                            for level, entry in check["levels"].items()}},
    }
    if results_path:
        with open(results_path) as handle:
            results = json.load(handle)
        card["evaluation"] = {
            "set": results.get("set"), "images": results["images"],
            "command": results.get("command", ""),
            "psnr": {level: {name: round(r["psnr"], 2) for name, r in entry["rules"].items()}
                     | {f"best fixed N={entry['best_fixed']['steps']}":
                        round(entry["best_fixed"]["psnr"], 2)}
                     for level, entry in results["levels"].items()}}
    with open(os.path.join(staging, "card.json"), "w") as handle:
        json.dump(card, handle, indent=2)
    restorer_io.replace_folder(staging, destination)
    return destination


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("run_dir", "runs/dqn_denoise", "Finished run of agents.train_dqn.", **into)
    flags.DEFINE_string("results", None, "evaluate's JSON (with --stop learned) for the card.",
                        **into)
    flags.DEFINE_string("out_dir", None, "Where to write it (default: beside the restorer).",
                        **into)


def main(argv):
    del argv
    path = ship_policy(FLAGS.run_dir, FLAGS.results, FLAGS.out_dir)
    print(f"shipped {path} (card.json inside)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
