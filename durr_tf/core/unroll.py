"""The recurrent restorer: X_n = X_{n-1} + Δt·f(X_{n-1}) with shared weights, in tf.while_loop.

`unroll_fixed` is the differentiable form used in training (every image runs the same N);
`restore` runs until a stop rule says stop, per image, with a hard `max_steps` bound, and can
return the whole trajectory. `Stepper` steps from Python instead, one iterate at a time, for the
loops that look at each iterate outside the graph (evaluation, calibration, the policy's
environment, tiling, timing).
"""

import tensorflow as tf

DT = 0.1  # Euler step size Δt; f learns its scale, so Δt only sets the initial pace
DEFAULT_MAX_STEPS = 30  # well beyond the refined map's largest N (12) and its extrapolation to σ=75


def euler_step(cell, x, dt=DT):
    """One residual Euler step; the iterate stays float32 whatever the cell computes in."""
    return x + dt * tf.cast(cell(x), x.dtype)


class Stepper:
    """The Euler step of one cell, compiled once, and the trajectories it walks.

    The step is traced once, on the first call, for float32 [B,H,W,C] batches of any batch and
    image size with that call's C: loops over images of many sizes do not retrace, and C stays
    in the signature because the graph the cell traces to, in mixed precision its outputs too,
    depends on it.
    """

    def __init__(self, cell, dt=DT):
        self._cell, self._dt, self._step = cell, dt, None

    def __call__(self, x):
        """X_n from X_{n-1} = `x` ([B,H,W,C]); returns a float32 tensor."""
        x = tf.convert_to_tensor(x, tf.float32)
        if self._step is None:
            spec = tf.TensorSpec([None, None, None, x.shape[-1]], tf.float32)
            self._step = tf.function(lambda v: euler_step(self._cell, v, self._dt),
                                     input_signature=[spec])
        return self._step(x)

    def trajectory(self, x, max_steps):
        """Yields X_0 = `x` (as float32), X_1, …, X_max_steps. Each step runs only when its
        iterate is asked for, so a caller that stops early by leaving the loop computes no
        step beyond the last iterate it used."""
        x = tf.convert_to_tensor(x, tf.float32)
        yield x
        for _ in range(max_steps):
            x = self(x)
            yield x


def unroll_fixed(cell, x, steps, dt=DT, training=False):
    """Applies `steps` Euler steps to every image (steps may be a tensor); differentiable."""

    def body(i, iterate):
        return i + 1, iterate + dt * tf.cast(cell(iterate, training=training), iterate.dtype)

    _, out = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0), x))
    return out


def restore(cell, x, stop_rule, max_steps=DEFAULT_MAX_STEPS, dt=DT, keep_trajectory=False):
    """Unrolls until `stop_rule` stops each image or `max_steps` is reached.

    The rule sees X_0, then each new iterate X_n, and returns a [B] bool: True stops that image
    at X_n, and it stays fixed while the others go on. Each step runs the cell on the images
    still going only (a batch's cost falls as its images stop), and none once all stopped.
    Returns (X [B,H,W,C], steps int32 [B], trajectory [T+1,B,H,W,C] or None), where steps[b]
    is the number of Euler steps image b received and trajectory[0] is the input.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    batch = tf.shape(x)[0]
    trajectory = tf.TensorArray(tf.float32, size=0, dynamic_size=True, clear_after_read=False,
                                element_shape=x.shape)
    if keep_trajectory:
        trajectory = trajectory.write(0, x)

    def keep_going(n, iterate, done, steps, state, traj):
        return tf.logical_and(n < max_steps, tf.logical_not(tf.reduce_all(done)))

    def body(n, iterate, done, steps, state, traj):
        going = tf.where(tf.logical_not(done))  # [K, 1] indices of the images still going
        iterate = tf.tensor_scatter_nd_update(
            iterate, going, euler_step(cell, tf.gather_nd(iterate, going), dt))
        steps = tf.where(done, steps, n + 1)
        if keep_trajectory:
            traj = traj.write(n + 1, iterate)
        stop, state = stop_rule(n + 1, iterate, state)
        return n + 1, iterate, tf.logical_or(done, stop), steps, state, traj

    state = stop_rule.initial_state(x)
    done, state = stop_rule(tf.constant(0), x, state)
    initial = (tf.constant(0), x, done, tf.zeros([batch], tf.int32), state, trajectory)
    _, out, _, steps, _, trajectory = tf.while_loop(
        keep_going, body, initial, maximum_iterations=max_steps)
    return out, steps, (trajectory.stack() if keep_trajectory else None)
