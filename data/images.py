"""Reading image files into float arrays, with one clear error for anything that is not one.

Every reader in the project goes through `read_image`, so bad files (not an image, truncated,
zero bytes, decompression bombs, animations and multi-page files) fail the same way everywhere,
naming the file and the problem.
"""

import os
import warnings

import numpy as np
import tensorflow as tf
from PIL import Image

DEFAULT_MAX_PIXELS = 40_000_000  # larger: a decompression bomb, or past memory without tiling


class ImageReadError(ValueError):
    """Raised for a file that cannot be used as an image; the message names the file."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOR_16_BIT = (2, 4, 6)  # IHDR color types RGB, gray+alpha, RGBA


def to_8bit(image):
    """[0, 1] values (NumPy) clipped and rounded to the 0–255 grid of an 8-bit file, as uint8."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_8bit_tf(images):
    """`to_8bit` in TensorFlow, for graphs (serving, tf.data)."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


def _is_16_bit_color_png(path):
    """True for a PNG of 16 bits per sample with color or alpha (IHDR bytes 24 and 25), which
    PIL would open at 8 bits, truncating; 16-bit gray PIL reads whole."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    return (len(header) == 26 and header.startswith(PNG_SIGNATURE) and header[24] == 16
            and header[25] in PNG_COLOR_16_BIT)


def _to_float(pil_image):
    """Converts any PIL mode to float32 [H,W,C] in [0,1], keeping 16-bit gray precision."""
    mode = pil_image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (np.asarray(pil_image, dtype=np.uint16).astype(np.float32) / 65535.0)[..., None]
    if mode == "I":  # 32-bit int container; PNG 16-bit gray decodes to it
        return (np.clip(np.asarray(pil_image, dtype=np.float64), 0, 65535) / 65535.0).astype(
            np.float32)[..., None]
    if mode == "F":
        return np.asarray(pil_image, dtype=np.float32)[..., None]
    if mode in ("1", "L"):
        return (np.asarray(pil_image.convert("L"), dtype=np.float32) / 255.0)[..., None]
    if mode == "P":
        mode = "RGBA" if "transparency" in pil_image.info else "RGB"
    if mode == "LA":
        return np.asarray(pil_image, dtype=np.float32) / 255.0
    if mode in ("PA", "RGBA"):
        return np.asarray(pil_image.convert("RGBA"), dtype=np.float32) / 255.0
    return np.asarray(pil_image.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Returns (float32 [H,W,C] in [0,1], bit depth). C is 1 (gray), 2 (gray+alpha), 3 (RGB)
    or 4 (RGB+alpha); 16-bit PNGs keep their 16 bits in every channel.

    Raises ImageReadError for an unreadable, truncated, empty or oversized file, and for a file
    of several frames (an animated GIF, PNG or WebP, a multi-page TIFF) rather than keep one
    frame and drop the rest. An MPO (a camera JPEG with extra pictures beside the photo) is read
    as its first picture, the photo every JPEG reader shows.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageReadError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as pil_image:
                width, height = pil_image.size
                if width * height > max_pixels:
                    raise ImageReadError(
                        path, f"{width}x{height} is over the limit of {max_pixels} pixels "
                              "(if the image is genuine, raise the limit: --max_pixels of "
                              "restore and export)")
                frames = getattr(pil_image, "n_frames", 1)
                if frames > 1 and pil_image.format != "MPO":
                    raise ImageReadError(
                        path, f"holds {frames} frames (an animation or a multi-page file), and "
                              "only single-frame images are read; save the frames you want "
                              "restored as separate images")
                # TensorFlow's decoder keeps the 16 bits and, like PIL's load(), rejects a
                # truncated file, so these are decoded once, by TensorFlow.
                if _is_16_bit_color_png(path):
                    with open(path, "rb") as handle:
                        samples = tf.io.decode_png(handle.read(), dtype=tf.uint16).numpy()
                    array, bits = samples.astype(np.float32) / 65535.0, 16
                else:
                    pil_image.load()
                    bits = 16 if pil_image.mode.startswith("I") else 8
                    array = _to_float(pil_image)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, tf.errors.InvalidArgumentError) as error:
        raise ImageReadError(path, f"not a readable image ({error})") from error
    if not np.all(np.isfinite(array)):
        raise ImageReadError(path, "the image holds NaN or Inf values")
    return array, bits


def to_gray(image):
    """Luminance of an RGB(A) float image by the BT.601 weights; gray ones (alpha dropped)
    pass through."""
    if image.shape[-1] <= 2:
        return image[..., :1]
    rgb = image[..., :3]
    return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]


def save_image(path, image, bits=8):
    """Writes a float [H,W,C] image in [0,1] (clipped) as PNG/any PIL format, 8- or 16-bit
    (16 bits: PNG; PIL writes them for gray only, so color goes through TensorFlow's encoder).

    Writes to a temporary file beside the target and renames it, so a crash never leaves a
    half-written output.
    """
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    channels = image.shape[-1]
    file_format = Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG")
    encoded = None
    if bits == 16 and channels == 1:
        pil_image = Image.fromarray(np.round(image[..., 0] * 65535).astype(np.uint16))
    elif bits == 16 and file_format == "PNG":
        encoded = tf.io.encode_png(np.round(image * 65535).astype(np.uint16)).numpy()
    else:
        data = np.round(image * 255).astype(np.uint8)
        pil_image = Image.fromarray(data[..., 0] if channels == 1 else data)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        if encoded is None:
            pil_image.save(temporary, format=file_format)
        else:
            with open(temporary, "wb") as handle:
                handle.write(encoded)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
