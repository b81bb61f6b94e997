"""The policy unit's Q-network: two ResUnits and an LSTM cell (the paper's Sec. 3.1).

A TF-Agents `Network` with recurrent state: a strided stem, two residual units and a global
average pooling (so it runs on any image size), an LSTM cell that carries what it has seen of
the trajectory from step to step, and a linear head. About 1.0e5 parameters by default.
"""

import tensorflow as tf
from tf_agents.keras_layers import dynamic_unroll_layer
from tf_agents.networks import network
from tf_agents.trajectories import time_step

from durr_tf.core import jpeg_quality, stop_rules

FEATURES = 48
LSTM_UNITS = 48
GRID = 3  # at most GRID×GRID crops of a large image are read
HIGH_PASS_GAIN = 10.0  # brings noise and JPEG artifacts (0.01–0.2 in [0, 1] images) to O(1)


class ResUnit(tf.keras.layers.Layer):
    """conv-ReLU-conv plus the identity, then ReLU."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.first = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
        self.second = tf.keras.layers.Conv2D(filters, 3, padding="same")

    def call(self, x):
        return tf.nn.relu(x + self.second(self.first(x)))


def high_pass(x):
    """The image less its 3×3 local mean, amplified: what is left of the noise or the JPEG
    artifacts, and the edges."""
    return HIGH_PASS_GAIN * (x - tf.nn.avg_pool2d(x, 3, 1, "SAME"))


def image_statistics(x, read_quality=False):
    """[B, 2]: the blind rules' readings of whole images [B,H,W,C] on log scales: Immerkær's
    noise σ (`stop_rules.estimate_noise_sigma`) and the JPEG blockiness
    (`jpeg_quality.blockiness`, about 1 on a clean image, floored at 0.5). With `read_quality`,
    [B, 3]: then also the quality factor of the JPEG table the image was quantized with
    (`jpeg_quality.read_quality` over about QUALITY_BLOCKS blocks), 0 where it sits on none.
    The restorer's iterates drift off the table within a few steps (sooner at high quality);
    the LSTM keeps what X_0 told.

    A color image is read through its channels' mean: each reading then passes over one
    channel instead of three, which keeps the policy's call at a few percent of a restorer step.
    """
    channels = x.shape[-1]
    if channels != 1:
        # The channels' mean as a 1×1 convolution: on a CPU about twice as fast as
        # tf.reduce_mean over a 3-wide last axis.
        x = tf.nn.conv2d(x, tf.fill([1, 1, channels, 1], 1.0 / channels), 1, "VALID")
    sigma = stop_rules.estimate_noise_sigma(x)
    blockiness = tf.maximum(jpeg_quality.blockiness(x), 0.5)
    readings = [tf.math.log1p(sigma / 10.0), tf.math.log(blockiness)]
    if read_quality:
        quality = jpeg_quality.read_quality(x, QUALITY_BLOCKS)
        readings.append(tf.math.log1p(quality / 10.0))
    return tf.stack(readings, axis=-1)


STATISTICS = 2  # features `image_statistics` adds (one more with read_quality)
QUALITY_BLOCKS = 64  # about this many 8×8 blocks, spread over the image, are read for the
# quality: on 36 CBSD432 photos at every QF from 5 to 60 they read what all blocks read, and a
# policy call stays within a few percent of a restorer step


class StopEncoder(tf.keras.layers.Layer):
    """Image -> feature vector for any H×W: a fixed high-pass, a stride-2 stem, 4×4 average
    pooling, two ResUnits at 1/8 resolution, global average pooling.

    The high-pass takes the image content's low frequencies out before the first convolution,
    so that the degradation left in an iterate, not the content, dominates the features: from
    the raw image the encoder does not learn to tell JPEG qualities apart
    (docs/learned_stop_history.md).

    The full-resolution stem sees the pixel-level noise and artifacts (a rectified high-pass
    keeps their energy through the pooling); running the ResUnits at 1/8 resolution keeps them
    cheap.

    An image larger than the training patch (`tile`) is read as the mean of the features of at
    most `grid`×`grid` tile×tile crops spread over it (`grid_crops`). At 1/8 resolution a 48×48
    patch is a 6×6 map that the zero padding of the 3×3 convolutions reaches everywhere, so a
    whole photo read at once looks unlike the patches the policy was trained on; and a fixed
    number of crops makes the policy's cost independent of the image size.

    With `statistics`, the features end with `image_statistics` of the whole image: the crops
    read a fraction of a photo, and their 8×8 grid need not be the JPEG's, while the blind
    rules' σ and blockiness read all of it, for about a percent of a restorer step;
    `read_quality` adds the JPEG quality read off the quantization table.
    """

    def __init__(self, features=FEATURES, tile=None, grid=GRID, statistics=False,
                 read_quality=False, **kwargs):
        super().__init__(**kwargs)
        if read_quality and not statistics:
            raise ValueError("read_quality is one of the image statistics: it needs statistics")
        self.features, self.tile, self.grid = features, tile, grid
        self.statistics, self.read_quality = statistics, read_quality
        self.output_size = features + (STATISTICS + int(read_quality) if statistics else 0)
        self.stem = tf.keras.layers.Conv2D(features, 3, strides=2, padding="same",
                                           activation="relu")
        self.pool = tf.keras.layers.AveragePooling2D(4, padding="same")
        self.units = [ResUnit(features), ResUnit(features)]

    def call(self, image):
        batch = tf.shape(image)[0]
        x = grid_crops(image, self.tile, self.grid) if self.tile else image
        x = self.pool(self.stem(high_pass(x)))
        for unit in self.units:
            x = unit(x)
        features = tf.reduce_mean(x, axis=[1, 2])
        features = tf.reduce_mean(tf.reshape(features, [batch, -1, self.features]), axis=1)
        if self.statistics:
            features = tf.concat([features, image_statistics(image, self.read_quality)],
                                 axis=-1)
        return features

    def get_config(self):
        return {**super().get_config(), "features": self.features, "tile": self.tile,
                "grid": self.grid, "statistics": self.statistics,
                "read_quality": self.read_quality}


def grid_crops(x, tile, grid):
    """[B,H,W,C] -> [B·r·c, t, t', C]: one tile×tile crop centred in each cell of an r×c grid
    over each image, r = min(H // tile, grid) and c likewise (at least 1; one crop of the whole
    side where a side is shorter than a tile), images kept together in order."""
    shape = tf.shape(x)

    def starts(size, crop):
        cells = tf.clip_by_value(size // crop, 1, grid)
        centres = (size * (2 * tf.range(cells) + 1)) // (2 * cells)
        first = tf.clip_by_value(centres - crop // 2, 0, size - crop)
        return cells, tf.reshape(first[:, None] + tf.range(crop)[None], [-1])

    height, width = tf.minimum(shape[1], tile), tf.minimum(shape[2], tile)
    rows, row_index = starts(shape[1], height)
    cols, col_index = starts(shape[2], width)
    x = tf.gather(tf.gather(x, row_index, axis=1), col_index, axis=2)
    x = tf.reshape(x, [shape[0], rows, height, cols, width, shape[3]])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [-1, height, width, shape[3]])


class StopQNetwork(network.Network):
    """Q-values of (continue, stop) from the current iterate and the LSTM state.

    Takes [B,H,W,C] (one step) or [B,T,H,W,C] (a training sequence, the LSTM reset where
    step_type is FIRST). `encoder`, `cell` and `head` are public so that the policy can be
    exported as a plain TensorFlow step function (`agents.dqn.PolicyExport`).
    """

    def __init__(self, observation_spec, action_spec, features=FEATURES, lstm_units=LSTM_UNITS,
                 statistics=False, tile=0, read_quality=False, name="StopQNetwork"):
        """The encoder reads `tile`×`tile` crops, by default the side of the observations (the
        training patches); `statistics` adds the whole image's `image_statistics` to its
        features, `read_quality` the JPEG quality among them."""
        cell = tf.keras.layers.LSTMCell(lstm_units)
        state_spec = [tf.TensorSpec([size], tf.float32) for size in cell.state_size]
        super().__init__(input_tensor_spec=observation_spec, state_spec=state_spec, name=name)
        self.encoder = StopEncoder(features, tile=tile or int(observation_spec.shape[0]),
                                   statistics=statistics, read_quality=read_quality)
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
        features = tf.reshape(self.encoder(images),
                              tf.concat([outer, [self.encoder.output_size]], 0))
        q_values, network_state = self.q_values_of_features(features, step_type, network_state,
                                                            training)
        return (q_values if has_time else q_values[:, 0]), network_state

    def q_values_of_features(self, features, step_type, network_state, training=False):
        """[B,T,2] Q-values and the final state from the encoder's [B,T,F] features: the part
        of the network after the encoder, for training it on features computed once."""
        output, network_state = self.lstm_outputs(features, step_type, network_state, training)
        return self.head(output), network_state

    def lstm_outputs(self, features, step_type, network_state, training=False):
        """[B,T,units] the LSTM's outputs (what the head reads) and its final state from the
        encoder's [B,T,F] features, the state reset where step_type is FIRST."""
        reset = tf.equal(step_type, time_step.StepType.FIRST)
        return self._unroll(features, initial_state=network_state, reset_mask=reset,
                            training=training)
