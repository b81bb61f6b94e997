import numpy as np
import tensorflow as tf

from durr_tf.core import stop_rules, unroll


def decay(x, training=False):
    """f(X) = -X: the Euler iterates are X_n = (1 - Δt)^n X_0, known in closed form."""
    return -x


def test_unroll_fixed_matches_the_closed_form():
    x = tf.random.uniform([2, 5, 7, 1], seed=0)
    out = unroll.unroll_fixed(decay, x, tf.constant(6))
    np.testing.assert_allclose(out.numpy(), (1 - unroll.DT) ** 6 * x.numpy(), rtol=1e-5)


def test_unroll_fixed_is_differentiable_with_a_tensor_step_count():
    scale = tf.Variable(1.0)
    x = tf.ones([1, 4, 4, 1])
    with tf.GradientTape() as tape:
        out = unroll.unroll_fixed(lambda v, training=False: -scale * v, x, tf.constant(3))
        loss = tf.reduce_sum(out)
    grad = tape.gradient(loss, scale)
    # d/ds of 16 (1 - Δt s)^3 at s = 1
    expected = 16 * 3 * (1 - unroll.DT) ** 2 * (-unroll.DT)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5)


def test_images_stop_independently_and_stay_fixed():
    x = tf.ones([3, 4, 4, 1])
    rule = stop_rules.FixedSteps(tf.constant([0, 2, 5]))
    out, steps, trajectory = unroll.restore(decay, x, rule, max_steps=10, keep_trajectory=True)
    np.testing.assert_array_equal(steps.numpy(), [0, 2, 5])
    for image, n in enumerate([0, 2, 5]):
        np.testing.assert_allclose(out.numpy()[image], (1 - unroll.DT) ** n, rtol=1e-6)
    # the loop ends once every image stopped: input plus 5 steps recorded
    assert trajectory.shape[0] == 6
    np.testing.assert_allclose(trajectory.numpy()[5, 0], 1.0)  # stopped at 0, never moved


class NeverStop:
    def initial_state(self, x0):
        return tf.constant(0)

    def __call__(self, n, x, state):
        return tf.zeros([tf.shape(x)[0]], tf.bool), state


def test_max_steps_bounds_a_rule_that_never_stops():
    out, steps, _ = unroll.restore(decay, tf.ones([2, 3, 3, 1]), NeverStop(), max_steps=7)
    np.testing.assert_array_equal(steps.numpy(), [7, 7])
    np.testing.assert_allclose(out.numpy(), (1 - unroll.DT) ** 7, rtol=1e-6)


def test_restore_runs_inside_tf_function_for_any_shape():
    run = tf.function(lambda x: unroll.restore(decay, x, stop_rules.FixedSteps(3))[:2],
                      input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
    for shape in ([1, 5, 3, 1], [2, 9, 9, 1]):
        out, steps = run(tf.ones(shape))
        assert out.shape == shape and list(steps.numpy()) == [3] * shape[0]


def test_every_blind_rule_runs_in_graph():
    for rule in (stop_rules.EstimatedLevelRule(), stop_rules.DecorrelationRule()):
        run = tf.function(lambda x, rule=rule: unroll.restore(decay, x, rule, max_steps=12)[:2],
                          input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
        noisy = tf.random.normal([2, 16, 16, 1], 0.5, 0.1, seed=4)
        out, steps = run(noisy)
        assert out.shape == noisy.shape and all(0 <= s <= 12 for s in steps.numpy())


def test_a_step_runs_the_cell_on_the_images_still_going_only():
    batches = []

    def counting_decay(x):
        batches.append(int(tf.shape(x)[0]))
        return -x

    rule = stop_rules.FixedSteps(tf.constant([1, 3, 5]))
    out, steps, _ = unroll.restore(counting_decay, tf.ones([3, 4, 4, 1]), rule, max_steps=10)
    assert batches == [3, 2, 2, 1, 1]
    np.testing.assert_allclose(out.numpy()[:, 0, 0, 0], (1 - unroll.DT) ** np.array([1, 3, 5]),
                               rtol=1e-6)


def test_the_shipped_restorer_gives_the_outputs_of_stepping_the_whole_batch():
    """Running the cell on the images still going changes no float32 output: the reference
    steps every image and holds the stopped ones fixed."""
    from durr_tf.core import restorer_io

    cell = restorer_io.load_restorer("denoise")[0]
    x = tf.random.normal([3, 37, 50, 1], 0.5, 0.2, seed=1)
    stops = tf.constant([1, 4, 2])
    out, steps, _ = unroll.restore(cell, x, stop_rules.FixedSteps(stops), max_steps=10)
    reference = x
    for n in range(1, 5):
        reference = tf.where(tf.reshape(stops >= n, [-1, 1, 1, 1]),
                             unroll.euler_step(cell, reference), reference)
    np.testing.assert_array_equal(steps.numpy(), stops.numpy())
    np.testing.assert_array_equal(out.numpy(), reference.numpy())


def test_a_stepper_walks_the_restore_trajectory_one_step_per_iterate_asked_for():
    calls = tf.Variable(0)

    def counting_decay(x):
        calls.assign_add(1)
        return -x

    stepper = unroll.Stepper(counting_decay)
    x = np.ones([2, 3, 5, 1])  # float64 in, float32 iterates out
    iterates = list(stepper.trajectory(x, 4))
    assert all(iterate.dtype == tf.float32 for iterate in iterates)
    _, _, trajectory = unroll.restore(decay, x, NeverStop(), max_steps=4, keep_trajectory=True)
    np.testing.assert_array_equal(np.stack(iterates), trajectory.numpy())
    calls.assign(0)
    for n, _ in enumerate(stepper.trajectory(x, 10)):
        if n == 2:
            break
    assert int(calls.numpy()) == 2
