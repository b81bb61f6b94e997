"""Compute precision of the U-Net, chosen for the hardware when asked for `auto`.

The iterates of the Euler loop stay float32 in every precision; only the cell computes in the
lower one. Mixed bfloat16 pays off on CPUs that compute bfloat16 natively (avx512_bf16 or AMX)
and is several times slower on the others; mixed float16 pays off on GPUs with tensor cores
(compute capability 7.0 and up) and needs loss scaling in training.
"""

import tensorflow as tf

CHOICES = ("float32", "mixed_bfloat16", "mixed_float16")
FLAG_CHOICES = ("auto",) + CHOICES
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
TENSOR_CORE_CAPABILITY = (7, 0)


def choose(cpu_flags, gpu_capabilities):
    """The precision for a device: on the first GPU if there is one, else on the CPU.

    `cpu_flags` is the set of the CPU's feature flags (as /proc/cpuinfo names them) and
    `gpu_capabilities` a list of (major, minor) compute capabilities, empty without a GPU.
    """
    if gpu_capabilities:
        return ("mixed_float16" if tuple(gpu_capabilities[0]) >= TENSOR_CORE_CAPABILITY
                else "float32")
    return "mixed_bfloat16" if set(NATIVE_BF16_CPU_FLAGS) & set(cpu_flags) else "float32"


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The feature flags of this machine's CPU (empty where /proc/cpuinfo does not exist)."""
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_capabilities():
    """Compute capabilities of the GPUs TensorFlow sees, in its device order."""
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
            for gpu in tf.config.list_physical_devices("GPU")]


def resolve(precision):
    """`auto` -> the choice for this machine; any other known precision passes through."""
    if precision == "auto":
        return choose(cpu_flags(), gpu_capabilities())
    if precision not in CHOICES:
        raise ValueError(f"unknown precision {precision!r}; one of {', '.join(FLAG_CHOICES)}")
    return precision
