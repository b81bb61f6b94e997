import numpy as np
import pytest

from data import pipelines, sets


def _images(image_dir, patch=32):
    return pipelines.load_training_images(sets.image_files(image_dir), 1, patch)


def _take(dataset, n):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(n)]


def test_batches_have_shapes_and_one_level_each(image_dir):
    data = pipelines.patch_dataset(_images(image_dir), pipelines.gaussian_noise_degrader(),
                                   patch_size=32, batch_size=5, seed=1)
    for degraded, clean, level in _take(data, 4):
        assert degraded.shape == clean.shape == (5, 32, 32, 1)
        assert len(set(level)) == 1 and level[0] in (25, 35, 45, 55)
        assert 0.0 <= clean.min() and clean.max() <= 1.0
        residual_std = np.std(degraded - clean) * 255
        assert abs(residual_std - level[0]) < 0.15 * level[0]


def test_deterministic_under_seed_and_resumable(image_dir):
    images = _images(image_dir)
    make = lambda seed, start=0: pipelines.patch_dataset(  # noqa: E731
        images, pipelines.gaussian_noise_degrader(), 32, 4, seed, start_batch=start)
    first, again = _take(make(3), 5), _take(make(3), 5)
    for a, b in zip(first, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    resumed = _take(make(3, start=3), 2)  # batches 3 and 4 of the same stream
    for a, b in zip(first[3:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = _take(make(4), 1)[0]
    assert not np.array_equal(other[1], first[0][1])


def test_images_smaller_than_the_patch_are_dropped_or_refused(image_dir):
    files = sets.image_files(image_dir)
    kept = pipelines.load_training_images(files, 1, 48)
    assert 0 < len(kept) < len(files)
    with pytest.raises(ValueError, match="no training image"):
        pipelines.load_training_images(files, 1, 500)


def test_jpeg_batches_are_tensorflow_jpeg_of_the_clean_patches(image_dir):
    from data import degradations

    data = pipelines.patch_dataset(_images(image_dir), pipelines.jpeg_degrader(), 32, 3, seed=2)
    seen = set()
    for degraded, clean, level in _take(data, 6):
        assert len(set(level)) == 1 and level[0] in (20, 30)
        seen.add(level[0])
        expected = degradations.jpeg_tf(clean, int(level[0])).numpy()
        np.testing.assert_array_equal(degraded, expected)
    assert seen == {20, 30}


def test_unreadable_training_files_are_reported_and_skipped(image_dir, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    messages = []
    images = pipelines.load_training_images(sets.image_files(image_dir) + [str(bad)], 1, 8,
                                            log=messages.append)
    assert len(images) == len(sets.image_files(image_dir))
    assert len(messages) == 1 and "broken.png" in messages[0]


def test_color_training_photos_become_what_the_task_evaluates_on(tmp_path):
    from PIL import Image

    from durr_tf.core import tasks

    rgb = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    deblock = tasks.get("deblock")
    (y,) = pipelines.load_training_images([str(tmp_path / "photo.png")], 1, 8,
                                          prepare=deblock.prepare_clean)
    np.testing.assert_array_equal(y, np.round(deblock.read_clean(tmp_path / "photo.png") * 255))
    (gray,) = pipelines.load_training_images([str(tmp_path / "photo.png")], 1, 8)
    assert np.abs(gray.astype(int) - y.astype(int)).max() > 5  # full-range gray is not Y
