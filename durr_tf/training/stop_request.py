"""SIGTERM as a request to stop a training loop after its current step, with a checkpoint.

A cluster scheduler or `kill` sends SIGTERM before it kills; the loops of `train_restorer` and
`agents.train_dqn` finish the step they are in, save, and return instead of losing the work
since their last checkpoint.
"""

import signal

from absl import logging


class StopRequest:
    """While entered, SIGTERM sets `requested` instead of ending the process; on exit the
    previous handler comes back."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        logging.warning("signal %d: saving a checkpoint and stopping", signum)
        self.requested = True

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc_info):
        signal.signal(signal.SIGTERM, self._previous)
        return False
