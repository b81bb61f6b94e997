"""The benchmark's result cache: one JSON file per (task, method, level, number of images) under
OUT/cache, written as soon as the result is done, so that a killed run resumes and methods may
run in separate processes into the same OUT.

A file holds its key, what the result depends on (the images, the seed and, where given, the
digest of the weights), and is reused only while that key still holds.
"""

import json
import os


def _path(out, task_name, method, level, images):
    return os.path.join(out, "cache", f"{task_name}-{method}-{level:g}-{images}.json")


def _key(files, seed, model):
    key = {"images": [os.path.basename(f) for f in files], "seed": seed}
    if model is not None:
        key["model"] = model
    return key


def cached(out, task_name, method, files, level, seed, model=None):
    """The cached rows of (task, method, level) for exactly these files, seed and model, or {}."""
    path = _path(out, task_name, method, level, len(files))
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        entry = json.load(handle)
    return entry["methods"] if entry["key"] == _key(files, seed, model) else {}


def cached_results(out, task_name, method, files, level, seed, compute, model=None):
    """The cached rows of (task, method, level) for exactly these files, seed and model (the
    digest of weights that may change), or `compute()`'s, written to the cache by rename so that
    a kill never leaves half a file."""
    rows = cached(out, task_name, method, files, level, seed, model)
    if not rows:
        rows = compute()
        path = _path(out, task_name, method, level, len(files))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as handle:
            json.dump({"key": _key(files, seed, model), "methods": rows}, handle, indent=1)
        os.replace(path + ".tmp", path)
    return rows
