import numpy as np
import pytest

from durr_tf.core import tasks


def test_deblock_works_on_the_8bit_y_channel():
    rgb = np.random.default_rng(0).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    y = tasks.get("deblock").prepare_clean(rgb)
    assert y.shape == (16, 16, 1)
    np.testing.assert_allclose(y * 255, np.round(y * 255), atol=1e-4)
    assert 16 / 255 - 1e-6 <= y.min() and y.max() <= 235 / 255 + 1e-6


def test_degrade_is_deterministic_per_seed():
    clean = np.full((24, 24, 1), 0.5, np.float32)
    denoise = tasks.get("denoise")
    np.testing.assert_array_equal(denoise.degrade(clean, 25, (0, 1)),
                                  denoise.degrade(clean, 25, (0, 1)))
    deblock = tasks.get("deblock")
    assert deblock.degrade(clean, 10, (0, 1)).shape == clean.shape


def test_unknown_task():
    with pytest.raises(ValueError, match="known tasks: denoise, deblock, denoise_color"):
        tasks.get("deraining")


def test_read_clean_gives_each_task_its_working_image(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    gray = tasks.get("denoise").read_clean(tmp_path / "photo.png")
    y = tasks.get("deblock").read_clean(tmp_path / "photo.png")
    assert gray.shape == y.shape == (10, 12, 1)
    np.testing.assert_allclose(y, tasks.get("deblock").prepare_clean(rgb / 255.0), atol=1e-6)
