"""Registry of the benchmark/training sets: where they come from, what they must contain.

A set is found in the first of: the `data_dir` argument (the `--data_dir` flag), the
`DURR_DATA_DIR` environment variable, or the per-user cache (`~/.cache/durr_tf/data`), as a
folder named after the set. Its files and their sha256 checksums (data/checksums/NAME.sha256)
are checked, and a missing or corrupt set gives one `DatasetError` that says which set, where
it looked, and how to get it. Only the files of that manifest are read: other files in the
folder (a user's outputs, say) never enter a benchmark.
"""

import dataclasses
import hashlib
import os
from importlib import resources

# The extensions that make a file in a folder an image: every place that lists a folder's images
# (sets, the restore command) goes through `image_files`, so they all find the same files.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm",
                    ".tif", ".tiff", ".webp")
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "durr_tf", "data")
_DNCNN = ("https://github.com/cszn/DnCNN/archive/e93b27812d3ff523a3a79d19e5e50d233d7a8d0a.zip",
          "DnCNN-e93b27812d3ff523a3a79d19e5e50d233d7a8d0a")
_FFDNET = ("https://github.com/cszn/FFDNet/archive/e787f46df2f374ff3591186706229cb9a0591fea.zip",
           "FFDNet-e787f46df2f374ff3591186706229cb9a0591fea")
_SURE = ("https://github.com/Magauiya/Extended_SURE/archive/"
         "1bcec3b61d7c3687f0fc906d684cc7d29e59aab4.zip",
         "Extended_SURE-1bcec3b61d7c3687f0fc906d684cc7d29e59aab4")


class DatasetError(RuntimeError):
    """A set is missing, incomplete or corrupt; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    count: int
    archive_url: str  # a zip of the source repository at a fixed commit
    path_in_archive: str  # folder inside the zip that holds exactly the set's images
    description: str

    def checksums(self):
        """{file name: sha256} from the manifest shipped with the package."""
        text = resources.files("data").joinpath("checksums", f"{self.name}.sha256").read_text()
        return {name: digest for digest, name in (line.split() for line in text.splitlines())}


SETS = {spec.name: spec for spec in [
    DatasetSpec("BSD68", 68, _DNCNN[0], f"{_DNCNN[1]}/testsets/BSD68",
                "68 gray BSDS test images (Roth & Black), Gaussian denoising benchmark"),
    DatasetSpec("Set12", 12, _DNCNN[0], f"{_DNCNN[1]}/testsets/Set12",
                "12 classic gray images; used here for validation during training"),
    DatasetSpec("Train400", 400, _DNCNN[0],
                f"{_DNCNN[1]}/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400",
                "400 gray 180x180 BSDS crops, the DnCNN/TNRD training set"),
    DatasetSpec("LIVE1", 29, _DNCNN[0], f"{_DNCNN[1]}/testsets/LIVE1",
                "29 RGB images of the LIVE IQA database, JPEG deblocking benchmark"),
    DatasetSpec("CBSD68", 68, _FFDNET[0], f"{_FFDNET[1]}/testsets/CBSD68",
                "the color versions of BSD68, color denoising benchmark"),
    DatasetSpec("RNI6", 6, _FFDNET[0], f"{_FFDNET[1]}/testsets/RNI6",
                "6 real noisy gray photos (no ground truth)"),
    DatasetSpec("RNI15", 15, _FFDNET[0], f"{_FFDNET[1]}/testsets/RNI15",
                "15 real noisy color photos (no ground truth)"),
    DatasetSpec("CBSD432", 432, _SURE[0], f"{_SURE[1]}/Dataset/CBSD432",
                "432 BSDS500 color images not in CBSD68, color training set"),
]}


def spec(name):
    try:
        return SETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known sets: {', '.join(SETS)}") from None


def search_roots(data_dir=None):
    """The folders searched for sets, in order of precedence."""
    roots = [data_dir, os.environ.get("DURR_DATA_DIR"), CACHE_DIR]
    return [root for root in roots if root]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name, folder):
    """Returns a list of problems with `folder` as set `name` (empty when it is complete)."""
    expected = spec(name).checksums()
    if not os.path.isdir(folder):
        return [f"{folder} does not exist"]
    problems = []
    for file_name, digest in sorted(expected.items()):
        path = os.path.join(folder, file_name)
        if not os.path.isfile(path):
            problems.append(f"{file_name} is missing")
        elif sha256(path) != digest:
            problems.append(f"{file_name} has the wrong checksum (corrupt or a different file)")
    return problems


def _how_to_get(name):
    return (f"Get it with `python -m data.fetch {name}` (downloads from its public source), or "
            f"`python -m data.fetch {name} --from DIR` for a copy you already have, or point "
            "--data_dir / DURR_DATA_DIR at a folder that holds it.")


def locate(name, data_dir=None):
    """Returns the folder of set `name` after checking its count and checksums."""
    spec(name)
    looked = []
    for root in search_roots(data_dir):
        folder = os.path.join(root, name)
        looked.append(folder)
        if not os.path.isdir(folder):
            continue
        problems = verify(name, folder)
        if problems:
            shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)"
                                               if len(problems) > 3 else "")
            raise DatasetError(f"dataset {name} at {folder} is incomplete or corrupt: {shown}. "
                               + _how_to_get(name))
        return folder
    raise DatasetError(f"dataset {name} not found; looked in: {', '.join(looked) or '(nowhere)'}. "
                       + _how_to_get(name))


def image_files(folder):
    """Image files of a folder (by `IMAGE_EXTENSIONS`), sorted by name; hidden files and
    subfolders are skipped."""
    paths = (os.path.join(folder, name) for name in os.listdir(folder)
             if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    return sorted(path for path in paths if os.path.isfile(path))


def resolve(name_or_folder, data_dir=None):
    """A registered set name (verified; its manifest's files) or a user's own folder of
    images -> sorted file list."""
    if name_or_folder in SETS:
        folder = locate(name_or_folder, data_dir)
        return [os.path.join(folder, name) for name in sorted(spec(name_or_folder).checksums())]
    if os.path.isdir(name_or_folder):
        files = image_files(name_or_folder)
        if files:
            return files
        raise DatasetError(f"{name_or_folder} holds no image files")
    raise DatasetError(f"{name_or_folder!r} is neither a known dataset ({', '.join(SETS)}) "
                       "nor a folder")
