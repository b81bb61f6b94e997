import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
import tensorflow as tf

from data import sets
from data.images import ImageReadError, read_image, save_image, to_gray
from tests.conftest import synthetic_gray


def test_reads_8bit_gray_as_unit_floats(tmp_path):
    pixels = synthetic_gray(20, 30)
    Image.fromarray(pixels).save(tmp_path / "g.png")
    image, bits = read_image(tmp_path / "g.png")
    assert image.shape == (20, 30, 1) and image.dtype == np.float32 and bits == 8
    np.testing.assert_allclose(image[..., 0] * 255, pixels, atol=1e-4)


def test_reads_16bit_gray_with_full_precision(tmp_path):
    pixels = (np.arange(12 * 10).reshape(12, 10) * 500 + 7).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "g16.png")
    image, bits = read_image(tmp_path / "g16.png")
    assert bits == 16
    np.testing.assert_allclose(image[..., 0] * 65535, pixels, atol=1e-2)


def test_rgba_and_palette_images(tmp_path):
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image, _ = read_image(tmp_path / "a.png")
    assert image.shape == (8, 9, 4)
    np.testing.assert_allclose(image[0, 0], [200 / 255, 0, 0, 128 / 255], atol=1e-6)
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0].shape == (8, 9, 3)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_reads_16bit_color_and_alpha_pngs_with_full_precision(tmp_path, channels):
    """PIL opens these at 8 bits (1000/65535 would come back as 3/255)."""
    pixels = (np.arange(6 * 5 * channels).reshape(6, 5, channels) * 997 + 1000).astype(np.uint16)
    (tmp_path / "c16.png").write_bytes(tf.io.encode_png(pixels).numpy())
    image, bits = read_image(tmp_path / "c16.png")
    assert bits == 16 and image.shape == (6, 5, channels)
    np.testing.assert_allclose(image * 65535, pixels, atol=1e-2)


def test_gray_with_alpha_stays_two_channels(tmp_path):
    pixels = np.zeros((4, 3, 2), np.uint8)
    pixels[..., 0], pixels[..., 1] = 90, 200
    Image.fromarray(pixels, "LA").save(tmp_path / "la.png")
    image, bits = read_image(tmp_path / "la.png")
    assert bits == 8 and image.shape == (4, 3, 2)
    np.testing.assert_allclose(image[0, 0] * 255, [90, 200], atol=1e-4)
    np.testing.assert_allclose(to_gray(image) * 255, np.full((4, 3, 1), 90.0), atol=1e-4)


def test_16bit_color_round_trips_through_save(tmp_path):
    image = np.random.default_rng(0).uniform(size=(7, 9, 3)).astype(np.float32)
    save_image(tmp_path / "rgb16.png", image, bits=16)
    back, bits = read_image(tmp_path / "rgb16.png")
    assert bits == 16
    np.testing.assert_allclose(back, image, atol=1 / 65535)


@pytest.mark.parametrize("content, problem", [
    (b"", "empty"),
    (b"this is a text file, not a picture", "not a readable image"),
])
def test_bad_files_name_the_file_and_problem(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=problem) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_png_is_an_error(tmp_path):
    Image.fromarray(synthetic_gray(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")


@pytest.mark.parametrize("cut", ["half", "no end chunk"])
def test_truncated_16bit_color_png_is_an_error(tmp_path, cut):
    """These are decoded by TensorFlow, not PIL, so its own truncation check is tested."""
    pixels = np.random.default_rng(0).integers(0, 65536, (32, 24, 3), dtype=np.uint16)
    data = tf.io.encode_png(pixels).numpy()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2 if cut == "half" else -12])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_pixel_limit_refuses_oversized_images(tmp_path):
    Image.fromarray(synthetic_gray(40, 50)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="over the limit"):
        read_image(tmp_path / "big.png", max_pixels=1000)


@pytest.mark.parametrize("extension", sets.IMAGE_EXTENSIONS)
def test_every_extension_a_folder_lists_is_read(tmp_path, extension):
    path = tmp_path / f"picture{extension}"
    Image.fromarray(synthetic_gray(12, 10)).save(path)
    assert read_image(path)[0].shape[:2] == (12, 10)


@pytest.mark.parametrize("name, frames", [("anim.gif", 3), ("anim.webp", 2), ("anim.png", 2),
                                          ("pages.tif", 4)])
def test_files_of_several_frames_are_refused_with_their_count(tmp_path, name, frames):
    """An animation or a multi-page file is refused as a whole, not read as its first frame."""
    pictures = [Image.fromarray(synthetic_gray(16, 20, seed)) for seed in range(frames)]
    pictures[0].save(tmp_path / name, save_all=True, append_images=pictures[1:])
    with pytest.raises(ImageReadError, match=f"{name}: holds {frames} frames"):
        read_image(tmp_path / name)
    pictures[0].save(tmp_path / f"still_{name}")
    assert read_image(tmp_path / f"still_{name}")[0].shape[:2] == (16, 20)


def test_a_camera_mpo_jpeg_reads_as_its_photo(tmp_path):
    """An MPO holds the photo and a second picture; the photo is what every JPEG reader shows."""
    photo = synthetic_gray(24, 32)
    Image.fromarray(photo).save(tmp_path / "camera.jpg", format="MPO", save_all=True, quality=95,
                                append_images=[Image.fromarray(synthetic_gray(12, 16, 1))])
    assert Image.open(tmp_path / "camera.jpg").n_frames == 2
    image, _ = read_image(tmp_path / "camera.jpg")
    assert image.shape == (24, 32, 1)
    assert np.abs(image[..., 0] * 255 - photo).mean() < 3


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nothing.png")


def test_to_gray_uses_bt601_weights():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], np.float32)
    np.testing.assert_allclose(to_gray(rgb)[..., 0], [[0.299, 0.587]], atol=1e-6)


def test_save_is_atomic_and_round_trips_16bit(tmp_path):
    image = np.linspace(0, 1, 30 * 20, dtype=np.float32).reshape(30, 20, 1)
    save_image(tmp_path / "out.png", image, bits=16)
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind
    back, bits = read_image(tmp_path / "out.png")
    assert bits == 16
    np.testing.assert_allclose(back, image, atol=1 / 65535)


@given(st.binary(max_size=2048), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]))
def test_random_bytes_give_an_image_or_one_clear_error(tmp_path_factory, payload, header):
    """Whatever the bytes (also behind a real PNG/JPEG signature), reading never crashes."""
    path = tmp_path_factory.mktemp("fuzz") / "input.png"
    path.write_bytes(header + payload)
    try:
        image, _ = read_image(path)
    except ImageReadError as error:
        assert str(path) in str(error)
    else:
        assert image.ndim == 3 and np.all(np.isfinite(image))
