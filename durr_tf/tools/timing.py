"""Timing the restoration unit on this machine (`python -m durr_tf.speed`), and the table and
JSON the timing tools write.

Measures one training step (batch 24 of 64×64, N Euler steps, forward and backward) for
N = 4, 8, 12, and one inference loop (one Euler step) on a 481×321 image, in float32 and mixed
bfloat16 (training at N = 4 only). Timings are medians after a warm-up; run it on an idle
machine.
"""

import json
import os
import timeit

import keras
import numpy as np
import tensorflow as tf

from durr_tf.core import restorer_io, unroll


def median_seconds(function, repeats):
    """Median wall time of `function()` over `repeats` calls, after a call that traces it."""
    function()
    return float(np.median(timeit.repeat(function, number=1, repeat=repeats)))


def train_step_seconds(precision, steps, repeats):
    cell = restorer_io.build(1, precision=precision)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(cell.trainable_variables)
    x = tf.random.uniform([24, 64, 64, 1], seed=0)
    y = tf.random.uniform([24, 64, 64, 1], seed=1)

    @tf.function
    def train_step(n):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(unroll.unroll_fixed(cell, x, n, training=True) - y))
        grads = tape.gradient(loss, cell.trainable_variables)
        optimizer.apply_gradients(zip(grads, cell.trainable_variables))
        return loss

    return median_seconds(lambda: train_step(tf.constant(steps)).numpy(), repeats)


def loop_milliseconds(precision, height, width, repeats):
    cell = restorer_io.build(1, precision=precision)
    step = unroll.Stepper(cell)
    x = tf.random.uniform([1, height, width, 1], seed=0)
    return 1000 * median_seconds(lambda: step(x).numpy(), repeats)


def print_table(rows, columns):
    """Prints `rows` as a Markdown table ({header: row -> text})."""
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row) for cell in columns.values()) + " |")


def report(rows, columns, info, out, sections=None):
    """Prints `rows` as a Markdown table ({header: row -> text}) and writes them with `info`
    (and any further named `sections` of rows) to the JSON file `out`."""
    print_table(rows, columns)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as handle:
        json.dump({"info": info, "rows": rows, **(sections or {})}, handle, indent=2)
    print(f"wrote {out}")
