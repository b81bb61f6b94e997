"""The policy unit's Q-network: two ResUnits and an LSTM cell (the paper's Sec. 3.1).

A TF-Agents `Network` with recurrent state: a strided stem, two residual units and a global
average pooling (so it runs on any image size), an LSTM cell that carries what it has seen of
the trajectory from step to step, and a linear head. About 1.0e5 parameters by default.
"""

import tensorflow as tf
from tf_agents.keras_layers import dynamic_unroll_layer
from tf_agents.networks import network
from tf_agents.trajectories import time_step

FEATURES = 48
LSTM_UNITS = 48


class ResUnit(tf.keras.layers.Layer):
    """conv-ReLU-conv plus the identity, then ReLU."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.first = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.second = tf.keras.layers.Conv2D(filters, 3, padding="same")

    def call(self, x):
        return tf.nn.relu(x + self.second(self.first(x)))


class StopEncoder(tf.keras.layers.Layer):
    """Image -> feature vector for any H×W: a stride-2 stem, 4×4 average pooling, two ResUnits
    at 1/8 resolution, global average pooling.

    The full-resolution stem sees the pixel-level noise and artifacts (a rectified high-pass
    keeps their energy through the pooling); running the ResUnits at 1/8 resolution keeps the
    policy's cost a few percent of a restorer step (ResUnits at 1/2 cost a quarter of one).
    """

    def __init__(self, features=FEATURES, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.stem = tf.keras.layers.Conv2D(features, 3, strides=2, padding="same",
                                           activation="relu")
        self.pool = tf.keras.layers.AveragePooling2D(4, padding="same")
        self.units = [ResUnit(features), ResUnit(features)]

    def call(self, x):
        x = self.pool(self.stem(x))
        for unit in self.units:
            x = unit(x)
        return tf.reduce_mean(x, axis=[1, 2])

    def get_config(self):
        return {**super().get_config(), "features": self.features}


class StopQNetwork(network.Network):
    """Q-values of (continue, stop) from the current iterate and the LSTM state.

    Takes [B,H,W,C] (one step) or [B,T,H,W,C] (a training sequence, the LSTM reset where
    step_type is FIRST). `encoder`, `cell` and `head` are public so that the policy can be
    exported as a plain TensorFlow step function (agents.export).
    """

    def __init__(self, observation_spec, action_spec, features=FEATURES, lstm_units=LSTM_UNITS,
                 name="StopQNetwork"):
        cell = tf.keras.layers.LSTMCell(lstm_units)
        state_spec = [tf.TensorSpec([size], tf.float32) for size in cell.state_size]
        super().__init__(input_tensor_spec=observation_spec, state_spec=state_spec, name=name)
        self.features = features
        self.encoder = StopEncoder(features)
        self.cell = cell
        self._unroll = dynamic_unroll_layer.DynamicUnroll(cell)
        actions = int(action_spec.maximum - action_spec.minimum + 1)
        self.head = tf.keras.layers.Dense(
            actions, kernel_initializer=tf.keras.initializers.RandomUniform(-0.03, 0.03))

    def call(self, observation, step_type=None, network_state=(), training=False):
        has_time = observation.shape.rank == self.input_tensor_spec.shape.rank + 2
        if not has_time:
            observation = observation[:, None]
            step_type = step_type[:, None]
        outer = tf.shape(observation)[:2]
        images = tf.reshape(observation, tf.concat([[-1], tf.shape(observation)[2:]], 0))
        features = tf.reshape(self.encoder(images), tf.concat([outer, [self.features]], 0))
        reset = tf.equal(step_type, time_step.StepType.FIRST)
        output, network_state = self._unroll(features, initial_state=network_state,
                                             reset_mask=reset, training=training)
        q_values = self.head(output)
        return (q_values if has_time else q_values[:, 0]), network_state
