"""Peer methods rebuilt in Keras from their released weights, for side-by-side benchmarks.

DnCNN-B and DnCNN-3 (Zhang et al. 2017) are MatConvNet SimpleNN stacks of 3×3 convolutions
(BatchNorm folded into the weights) and ReLUs that predict the residual: clean = x − net(x).
The .mat files are HDF5 (MATLAB v7.3); h5py shows a MATLAB kernel [kH,kW,Cin,Cout] reversed, as
(Cout,Cin,kW,kH), and drops a trailing Cout of 1. Weights are read at run time from the user's
copy (e.g. ../shared/peers) and never bundled.
"""

import h5py
import keras
import numpy as np


def _text(dataset):
    return "".join(chr(c) for c in np.asarray(dataset).ravel())


def read_simplenn(path):
    """[(kernel [3,3,Cin,Cout], bias [Cout]) or "relu"] for a SimpleNN conv/ReLU network."""
    stack = []
    with h5py.File(path, "r") as mat:
        layers = mat["net"]["layers"]
        for i in range(layers.shape[0]):
            layer = mat[layers[i, 0]]
            kind = _text(layer["type"][()])
            if kind == "relu":
                stack.append("relu")
            elif kind == "conv":
                kernel = np.asarray(mat[layer["weights"][0, 0]], np.float32)
                bias = np.asarray(mat[layer["weights"][1, 0]], np.float32).reshape(-1)
                if kernel.ndim == 3:  # MATLAB dropped the trailing Cout = 1
                    kernel = kernel[None]
                stack.append((np.transpose(kernel, (3, 2, 1, 0)), bias))
            else:
                raise ValueError(f"{path}: layer {i} is {kind!r}; only conv and relu are supported")
    return stack


def dncnn(path):
    """A Keras model x -> x − residual(x) with the weights of a DnCNN .mat file (any H×W)."""
    stack = read_simplenn(path)
    channels = stack[0][0].shape[2]
    inputs = keras.Input(shape=(None, None, channels))
    x = inputs
    for entry in stack:
        if entry == "relu":
            x = keras.layers.ReLU()(x)
        else:
            kernel, bias = entry
            conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding="same")
            x = conv(x)
            conv.set_weights([kernel, bias])
    outputs = keras.layers.Subtract()([inputs, x])
    return keras.Model(inputs, outputs, name="dncnn")
