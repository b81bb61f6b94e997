"""Building, saving and loading a restorer: the U-Net weights plus a JSON card that describes them.

A restorer on disk is `NAME.weights.h5` beside `NAME.json`; the card holds what is needed to
rebuild the network (channels, widths, Δt) and how the weights were made and measured.
"""

import hashlib
import json
import os
import shutil
from importlib import resources


from durr_tf.core import unet, unroll

PRETRAINED = {"denoise": "denoise_gray", "deblock": "deblock_gray",
              "denoise_color": "denoise_color"}


def build(channels=1, widths=unet.WIDTHS, precision="float32"):
    policy = None if precision == "float32" else precision
    return unet.build_unet(channels=channels, widths=tuple(widths), dtype_policy=policy)


def save_restorer(cell, prefix, card):
    """Writes PREFIX.weights.h5 and PREFIX.json (the card, completed with the architecture)."""
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    cell.save_weights(prefix + ".weights.h5")
    card = dict(card)
    card.update(channels=int(cell.input_shape[-1]), dt=unroll.DT,
                widths=[int(cell.get_layer(n).filters) for n in ("enc1_a", "enc2", "bottleneck")],
                parameters=int(cell.count_params()))
    with open(prefix + ".json", "w") as handle:
        json.dump(card, handle, indent=2)


def replace_folder(staging, destination):
    """Puts a finished `staging` folder in place of `destination`. The old folder is renamed
    aside and deleted only once the new one is in, so a kill never leaves neither: at worst
    (between the two renames) the old one waits as DESTINATION.old."""
    old = destination + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(destination):
        os.replace(destination, old)
    os.replace(staging, destination)
    shutil.rmtree(old, ignore_errors=True)


def read_card(prefix):
    with open(prefix + ".json") as handle:
        return json.load(handle)


def load_restorer(path_or_name, precision="float32"):
    """Loads a restorer from PREFIX (PREFIX.weights.h5 + PREFIX.json) or a shipped task name.

    Returns (cell, card).
    """
    prefix = pretrained_prefix(path_or_name) if path_or_name in PRETRAINED else path_or_name
    prefix = prefix[: -len(".weights.h5")] if prefix.endswith(".weights.h5") else prefix
    if not os.path.exists(prefix + ".weights.h5"):
        hint = (f" (no {path_or_name} model is shipped yet: train one with "
                "python -m durr_tf.train_restorer and pass its run folder's restorer)"
                if path_or_name in PRETRAINED else "")
        raise FileNotFoundError(f"no restorer weights at {prefix}.weights.h5{hint}")
    card = read_card(prefix)
    cell = build(card["channels"], card["widths"], precision)
    cell.load_weights(prefix + ".weights.h5")
    return cell, card


def pretrained_prefix(task):
    """Path prefix of the restorer shipped with the package for `task`."""
    return str(resources.files("durr_tf").joinpath("pretrained", PRETRAINED[task]))


def pretrained_digest(task):
    """sha256 of what decides the shipped restorer and policy's outputs: the weights, the
    policy's graph and variables and its stop margin (not the cards, which hold results)."""
    policy = pretrained_policy(task)
    paths = [pretrained_prefix(task) + ".weights.h5"]
    for folder, _, names in sorted(os.walk(policy)):
        paths += [os.path.join(folder, n) for n in sorted(names) if n != "card.json"]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.relpath(path, os.path.dirname(policy)).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def pretrained_policy(task):
    """Folder of the stop policy shipped beside the task's restorer (a TensorFlow SavedModel
    written by agents.train_dqn, with its card in card.json)."""
    return pretrained_prefix(task) + "_policy"
