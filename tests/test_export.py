"""The served SavedModel: signatures, core-op-only graph, fresh-process loading, bad requests."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from durr_tf.core import precision, restorer_io, stop_rules
from durr_tf.inference import serving
from durr_tf.inference.restorer import Restorer
from tests.conftest import REPO, built_once, run_in_process, synthetic_gray


@pytest.fixture(scope="module")
def served(smoke_run, dqn_run, tmp_path_factory):
    """The smoke restorer with the smoke DQN policy, exported by the real command (in the
    precision it chooses for this machine)."""
    def build(out):
        result = run_in_process("durr_tf.export", "--restorer",
                                os.path.join(smoke_run, "restorer"), "--stop",
                                f"dqn:{dqn_run}/policy", "--max_steps", 6, "--out", out,
                                "--version", 3)
        assert f"U-Net in {precision.resolve('auto')}" in result.stdout

    return os.path.join(built_once(tmp_path_factory, "served", build), "3")


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_served_graph_uses_only_core_tensorflow_ops(served):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(served, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    graph = saved.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    ops -= {f.signature.name for f in graph.library.function}  # calls of library functions
    assert "While" in ops or "StatelessWhile" in ops  # the loop is in the graph
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & ops
    unknown = sorted(op for op in ops if not hasattr(tf.raw_ops, op))
    assert unknown == []
    # Nothing the signatures run is pinned to a device, so on a GPU machine the loop and both
    # networks go there (only the variable save/restore functions sit on the CPU, as usual).
    serving = [n for f in graph.library.function for n in f.node_def
               if not any(k in f.signature.name for k in ("traced_save", "traced_restore"))]
    assert sorted({f"{n.op} on {n.device}" for n in serving if n.device}) == []


FRESH_PROCESS = r"""
import io, json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
rng = np.random.default_rng(0)
results = {}
for batch, (h, w) in ((1, (7, 5)), (3, (33, 47))):
    images = rng.uniform(0, 1, (batch, h, w, 1)).astype(np.float32)
    out = served.signatures["serving_default"](images=tf.constant(images))
    assert out["restored"].dtype == tf.float32 and out["restored"].shape == images.shape
    assert out["steps"].shape == (batch,)
    np.save(f"{sys.argv[2]}/in_{batch}.npy", images)
    np.save(f"{sys.argv[2]}/out_{batch}.npy", out["restored"].numpy())
    raw = served.signatures["restore_uint8"](images=tf.constant((images * 255).astype(np.uint8)))
    assert raw["restored"].dtype == tf.uint8 and raw["restored"].shape == images.shape
for name in sys.argv[3:]:
    out = served.signatures["restore_bytes"](image_bytes=tf.constant(open(name, "rb").read()))
    decoded = tf.io.decode_png(out["restored_png"], channels=0)
    results[name] = [list(decoded.shape), int(out["steps"][0])]
assert not [m for m in sys.modules if m.split(".")[0] in ("durr_tf", "agents", "tf_agents")]
print(json.dumps(results))
"""


def test_fresh_tensorflow_only_process_runs_every_signature(served, smoke_run, dqn_run, tmp_path):
    gray = synthetic_gray(21, 30)
    files = {"gray.png": gray, "rgb.png": np.dstack([gray, gray[::-1], gray[:, ::-1]]),
             "rgba.png": np.dstack([gray, gray, gray, np.full_like(gray, 200)])}
    for name, array in files.items():
        (tmp_path / name).write_bytes(_png(array))
    Image.fromarray(gray).save(tmp_path / "photo.jpg", quality=30)
    names = [str(tmp_path / n) for n in ("gray.png", "rgb.png", "rgba.png", "photo.jpg")]
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, served, str(tmp_path), *names],
                            cwd=str(tmp_path), env=environment, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    assert [shapes[n][0] for n in names] == [[21, 30, 1], [21, 30, 3], [21, 30, 4], [21, 30, 1]]

    cell, _ = restorer_io.load_restorer(os.path.join(smoke_run, "restorer"), precision.resolve("auto"))
    restorer = Restorer(cell, stop_rules.parse_stop_rule(f"dqn:{dqn_run}/policy", "denoise"), 6)
    for batch in (1, 3):
        images = np.load(tmp_path / f"in_{batch}.npy")
        served_out = np.load(tmp_path / f"out_{batch}.npy")
        for image, expected in zip(images, served_out):
            np.testing.assert_allclose(restorer(image)[0], expected, atol=1e-5)


def test_saved_model_cli_runs_the_default_signature(served, tmp_path):
    """TensorFlow's own command line (as a server's operator would try the export first); the
    other signatures run by name in the fresh process above."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    np.save(tmp_path / "images.npy", np.full((2, 9, 7, 1), 0.5, np.float32))
    ran = subprocess.run([cli, "run", "--dir", served, "--tag_set", "serve", "--signature_def",
                          "serving_default", "--inputs", f"images={tmp_path / 'images.npy'}"],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "restored" in ran.stdout and "steps" in ran.stdout


@pytest.fixture(scope="module")
def loaded(served):
    return tf.saved_model.load(served)


@pytest.mark.parametrize("images, message", [
    (np.zeros((1, 8, 8, 1), np.int32), "int32"),
    (np.zeros((8, 8, 1), np.float32), "shape"),
    (np.zeros((1, 8, 8, 3), np.float32), "shape"),
])
def test_wrong_dtype_rank_or_channels_is_refused(loaded, images, message):
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError), match=message):
        loaded.signatures["serving_default"](images=tf.constant(images))


def _jpeg(array, **options):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _png_claiming(width, height):
    """A PNG signature and IHDR that announce width × height, then nothing: the opening bytes
    of a decompression bomb."""
    return serving.PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + \
        height.to_bytes(4, "big") + b"\x08\x00\x00\x00\x00"


@pytest.mark.parametrize("payload, message", [
    (b"", "PNG or JPEG"),
    (b"GIF89a" + bytes(40), "PNG or JPEG"),
    (_png(synthetic_gray(10, 12))[:20], "truncated PNG"),
    (_png(synthetic_gray(10, 12))[:60], "PNG"),
    (_jpeg(synthetic_gray(10, 12))[:30], "JPEG"),
    (_png_claiming(50_000, 50_000), "over the limit of 40000000 pixels"),
])
def test_bad_encoded_images_get_one_clear_error(loaded, payload, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["restore_bytes"](image_bytes=tf.constant(payload))


def test_odd_but_valid_requests_are_restored(loaded):
    signature = loaded.signatures["serving_default"]
    for shape in ((0, 8, 8, 1), (1, 1, 1, 1), (1, 3, 2000, 1)):
        assert signature(images=tf.zeros(shape))["restored"].shape == shape
    # Noisy inputs are not clipped (the BSD68 protocol), so values outside [0, 1] are valid.
    noisy = np.random.default_rng(0).uniform(-0.5, 1.5, (2, 9, 7, 1)).astype(np.float32)
    assert np.all(np.isfinite(signature(images=tf.constant(noisy))["restored"].numpy()))
    for array in (np.zeros((6, 5, 4), np.uint8), np.full((6, 5), 9, np.uint16)):  # CMYK, 16-bit
        kind = "CMYK" if array.ndim == 3 else None
        buffer = io.BytesIO()
        Image.fromarray(array, kind).save(buffer, format="JPEG" if kind else "PNG")
        out = loaded.signatures["restore_bytes"](image_bytes=tf.constant(buffer.getvalue()))
        assert tf.io.decode_png(out["restored_png"]).shape[:2] == (6, 5)


@given(shape=st.lists(st.integers(0, 6), max_size=5),
       dtype=st.sampled_from(["float32", "float64", "float16", "uint8", "int32"]),
       fill=st.sampled_from([0.0, 0.5, 1.0, -3.0, 7.0, np.nan, np.inf]),
       signature=st.sampled_from(["serving_default", "restore_uint8"]))
def test_random_tensors_get_a_result_or_one_clear_error(loaded, shape, dtype, fill, signature):
    """Any rank, size, dtype and value: a restored batch of the same shape, or an error that
    says what was wrong; never a crash."""
    if dtype in ("uint8", "int32") and not np.isfinite(fill):
        fill = 255
    images = np.full(shape, fill).astype(dtype)
    try:
        out = loaded.signatures[signature](images=tf.constant(images))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        assert re.search(r"must have shape|NaN or Inf|float tensor|uint8 tensor", str(error)), error
    else:
        assert out["restored"].shape == images.shape and len(shape) == 4 and shape[3] == 1
        assert np.all(np.isfinite(out["restored"].numpy().astype(np.float64)))


@given(st.binary(max_size=600),
       st.sampled_from([b"", serving.PNG_SIGNATURE, serving.JPEG_SIGNATURE,
                        _png(synthetic_gray(8, 8))[:33]]))
def test_random_bytes_get_a_restored_png_or_one_clear_error(loaded, payload, header):
    try:
        out = loaded.signatures["restore_bytes"](image_bytes=tf.constant(header + payload))
    except tf.errors.InvalidArgumentError as error:
        assert re.search(r"PNG|JPEG|image|pixels", str(error)), error
    else:
        assert tf.io.decode_png(out["restored_png"]).shape.rank == 3


def test_non_finite_input_and_non_images_get_clear_errors(loaded):
    images = np.zeros((1, 8, 8, 1), np.float32)
    images[0, 3, 3, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        loaded.signatures["serving_default"](images=tf.constant(images))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image"):
        loaded.signatures["restore_bytes"](image_bytes=tf.constant(b"definitely not a PNG"))


def test_every_loop_is_bounded(tmp_path, smoke_run):
    class NeverStop:
        def initial_state(self, x0):
            return tf.constant(0)

        def __call__(self, n, x, state):
            return tf.zeros([tf.shape(x)[0]], tf.bool), state

    cell, _ = restorer_io.load_restorer(os.path.join(smoke_run, "restorer"))
    path = serving.export(cell, NeverStop(), str(tmp_path), max_steps=4)
    out = tf.saved_model.load(path).signatures["serving_default"](images=tf.zeros([2, 5, 5, 1]))
    assert list(out["steps"].numpy()) == [4, 4]


def _readme_requests():
    """The JSON request bodies of the serving page."""
    text = open(os.path.join(REPO, "docs", "serving.md")).read()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_readme_request_bodies_run_through_the_signatures(loaded):
    import base64

    bodies = _readme_requests()
    assert {body["signature_name"] for body in bodies} == {
        "serving_default", "restore_uint8", "restore_bytes"}
    for body in bodies:
        inputs = {}
        for key, value in body["inputs"].items():  # TF Serving's columnar ("inputs") format
            if isinstance(value, dict) and "b64" in value:
                inputs[key] = tf.constant(base64.b64decode(value["b64"]))
            else:
                dtype = tf.uint8 if body["signature_name"] == "restore_uint8" else tf.float32
                inputs[key] = tf.constant(value, dtype)
        out = loaded.signatures[body["signature_name"]](**inputs)
        assert "steps" in out
