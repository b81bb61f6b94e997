import hashlib
import os
import zipfile

import pytest

from data import fetch, sets
from tests.conftest import synthetic_gray
from PIL import Image


class _FakeSpec(sets.DatasetSpec):
    """A registry entry whose checksums come from the test's own files."""

    def __init__(self, name, digests):
        super().__init__(name, len(digests), "https://example.invalid/source.zip",
                         "source-main/images", "test set")
        object.__setattr__(self, "_digests", digests)

    def checksums(self):
        return dict(self._digests)


@pytest.fixture
def fake_set(tmp_path, monkeypatch):
    """A registered set 'Fake' of three PNGs, in tmp_path/source/Fake."""
    source = tmp_path / "source" / "Fake"
    source.mkdir(parents=True)
    digests = {}
    for i in range(3):
        Image.fromarray(synthetic_gray(20, 24, i)).save(source / f"{i}.png")
        digests[f"{i}.png"] = hashlib.sha256((source / f"{i}.png").read_bytes()).hexdigest()
    monkeypatch.setitem(sets.SETS, "Fake", _FakeSpec("Fake", digests))
    monkeypatch.delenv("DURR_DATA_DIR", raising=False)
    monkeypatch.setattr(sets, "CACHE_DIR", str(tmp_path / "cache"))
    return source


def test_shipped_checksum_lists_match_the_counts():
    for spec in sets.SETS.values():
        assert len(spec.checksums()) == spec.count, spec.name


def test_locate_by_argument_then_environment(fake_set, monkeypatch):
    root = str(fake_set.parent)
    assert sets.locate("Fake", data_dir=root) == str(fake_set)
    monkeypatch.setenv("DURR_DATA_DIR", root)
    assert sets.locate("Fake") == str(fake_set)
    assert sets.search_roots("/first")[0] == "/first"


def test_a_registered_set_is_its_manifest_not_its_folder(fake_set):
    Image.fromarray(synthetic_gray(20, 24, 9)).save(fake_set / "0_restored.png")  # a user's output
    files = sets.resolve("Fake", data_dir=str(fake_set.parent))
    assert [os.path.basename(f) for f in files] == ["0.png", "1.png", "2.png"]


def test_missing_set_error_names_set_places_and_remedy(fake_set, tmp_path):
    with pytest.raises(sets.DatasetError) as info:
        sets.locate("Fake", data_dir=str(tmp_path / "elsewhere"))
    message = str(info.value)
    assert "Fake" in message and str(tmp_path / "elsewhere") in message
    assert "python -m data.fetch Fake" in message


def test_corrupt_file_is_reported(fake_set):
    (fake_set / "1.png").write_bytes(b"not the same bytes")
    with pytest.raises(sets.DatasetError, match="1.png has the wrong checksum"):
        sets.locate("Fake", data_dir=str(fake_set.parent))


def test_a_folder_holds_the_images_of_every_listed_extension(tmp_path):
    """Each of `IMAGE_EXTENSIONS`, in either case, is an image; other files, hidden files and
    subfolders (even one named like an image) are not."""
    expected = []
    for i, extension in enumerate(sets.IMAGE_EXTENSIONS):
        name = f"{i:02d}{extension.upper() if i % 2 else extension}"
        Image.fromarray(synthetic_gray(8, 8)).save(tmp_path / name,
                                                   format=Image.registered_extensions()[extension])
        expected.append(str(tmp_path / name))
    assert {".gif", ".webp"} <= set(sets.IMAGE_EXTENSIONS)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(synthetic_gray(8, 8)).save(tmp_path / ".hidden.png")
    (tmp_path / "folder.png").mkdir()
    assert sets.image_files(str(tmp_path)) == expected


def test_unknown_names_and_folders():
    with pytest.raises(sets.DatasetError, match="unknown dataset"):
        sets.spec("BSD999")
    with pytest.raises(sets.DatasetError, match="neither a known dataset"):
        sets.resolve("/no/such/folder")


def test_fetch_from_a_local_folder_verifies_and_installs(fake_set, tmp_path):
    folder = fetch.fetch("Fake", source_dir=str(fake_set.parent), target_root=str(tmp_path / "t"))
    assert sorted(os.listdir(folder)) == ["0.png", "1.png", "2.png"]
    assert sets.verify("Fake", folder) == []


def test_fetch_refuses_an_incomplete_copy_and_installs_nothing(fake_set, tmp_path):
    os.remove(fake_set / "2.png")
    with pytest.raises(sets.DatasetError, match="2.png is missing"):
        fetch.fetch("Fake", source_dir=str(fake_set), target_root=str(tmp_path / "t"))
    assert not os.path.exists(tmp_path / "t" / "Fake")


def test_fetch_download_path_without_network(fake_set, tmp_path, monkeypatch):
    """Everything but the transfer: the archive is built here and 'downloaded' by copying."""
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in os.listdir(fake_set):
            bundle.write(fake_set / name, f"source-main/images/{name}")
        bundle.writestr("source-main/README.md", "other files are ignored")
    urls = []
    monkeypatch.setattr(fetch, "download",
                        lambda url, dest: (urls.append(url), os.link(archive, dest)))
    folder = fetch.fetch("Fake")
    assert urls == ["https://example.invalid/source.zip"]
    assert folder == os.path.join(sets.CACHE_DIR, "Fake")
    assert sets.verify("Fake", folder) == []


@pytest.mark.skipif(not os.environ.get("DURR_DATA_DIR"), reason="needs DURR_DATA_DIR")
def test_real_sets_verify():
    for name in ("BSD68", "Set12", "Train400"):
        assert len(sets.image_files(sets.locate(name))) == sets.spec(name).count
