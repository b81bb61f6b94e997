"""The precision chosen for the hardware (`--precision auto`) and its resolution."""

import pytest

from durr_tf.core import precision


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ({"avx2", "amx_tile", "amx_bf16"}, "mixed_bfloat16"),
    ({"avx2", "avx512f", "avx512_vnni"}, "float32"),  # AVX-512 without bfloat16
    (set(), "float32"),
])
def test_a_cpu_gets_bfloat16_only_where_it_computes_it_natively(flags, expected):
    assert precision.choose(flags, []) == expected


@pytest.mark.parametrize("capability, expected", [
    ((8, 0), "mixed_float16"),  # A100: tensor cores
    ((7, 0), "mixed_float16"),  # V100: the first with tensor cores
    ((6, 1), "float32"),  # Pascal: none
])
def test_a_gpu_gets_float16_only_with_tensor_cores(capability, expected):
    assert precision.choose({"avx512_bf16"}, [capability]) == expected


def test_the_first_gpu_decides():
    assert precision.choose(set(), [(6, 1), (8, 0)]) == "float32"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu sse2 avx512_bf16\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "sse2", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


@pytest.mark.parametrize("name", precision.CHOICES)
def test_a_named_precision_passes_through(name):
    assert precision.resolve(name) == name


def test_auto_resolves_to_the_choice_for_this_machine():
    expected = precision.choose(precision.cpu_flags(), precision.gpu_capabilities())
    assert precision.resolve("auto") == expected in precision.CHOICES


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, float32, mixed_bfloat16, mixed_float16"):
        precision.resolve("float16")
