"""Installs a dataset into the per-user cache (or --to): python -m data.fetch NAME [--from DIR].

With --from, the set is copied from a local folder that already holds it; without, the source
repository's archive (pinned commit) is downloaded and the set's folder extracted from it.
Either way every file is checked against the shipped sha256 list before it is installed, and
the set is moved into place only when complete, so an interrupted fetch leaves nothing half-done.
"""

import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile

from absl import app, flags, logging

from data import sets


def download(url, destination):
    """Downloads url to destination (a file path); the one place that touches the network."""
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out)


def _extract_folder(archive, folder_in_archive, destination):
    prefix = folder_in_archive.rstrip("/") + "/"
    os.makedirs(destination)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            name = member[len(prefix):]
            if member.startswith(prefix) and name and "/" not in name:
                with bundle.open(member) as source, open(os.path.join(destination, name), "wb") as out:
                    shutil.copyfileobj(source, out)


def fetch(name, source_dir=None, target_root=None):
    """Verifies and installs set `name` into target_root/NAME; returns the installed folder."""
    spec = sets.spec(name)
    target_root = target_root or sets.CACHE_DIR
    target = os.path.join(target_root, name)
    if os.path.isdir(target) and not sets.verify(name, target):
        return target
    os.makedirs(target_root, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=f".{name}-") as work:
        staged = os.path.join(work, name)
        if source_dir:
            folder = os.path.join(source_dir, name)
            source = folder if os.path.isdir(folder) else source_dir
            os.makedirs(staged)
            for file_name in spec.checksums():
                if os.path.isfile(os.path.join(source, file_name)):
                    shutil.copy2(os.path.join(source, file_name), staged)
        else:
            archive = os.path.join(work, "source.zip")
            logging.info("downloading %s", spec.archive_url)
            download(spec.archive_url, archive)
            _extract_folder(archive, spec.path_in_archive, staged)
        problems = sets.verify(name, staged)
        if problems:
            raise sets.DatasetError(
                f"{name} from {source_dir or spec.archive_url} failed verification: "
                + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                             if len(problems) > 5 else ""))
        if os.path.isdir(target):
            shutil.rmtree(target)  # an earlier, incomplete copy
        os.replace(staged, target)
    return target


FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Declares the command-line flags in `flag_values`: the global FLAGS when run as a program
    (only then, so that modules import cleanly), else a FlagValues of the caller's own."""
    into = {"flag_values": flag_values}
    flags.DEFINE_string("from", None, "Local folder holding the set (else download it).", **into)
    flags.DEFINE_string("to", None, f"Install under this folder (default {sets.CACHE_DIR}).",
                        **into)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(f"name one dataset: {', '.join(sets.SETS)}")
    try:
        folder = fetch(argv[1], FLAGS["from"].value, FLAGS.to)
    except sets.DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"{argv[1]}: {sets.spec(argv[1]).count} files verified in {folder}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
