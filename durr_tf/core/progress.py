"""Periodic progress lines with rate and ETA, logged (absl) so a terminal and a nohup log show them."""

import time

from absl import logging


def _clock(seconds):
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """`max_seconds` (0 = none) caps the ETA for runs that stop on a wall-time budget."""

    def __init__(self, total, start=0, label="", max_seconds=0):
        self.total, self.start, self.label = total, start, label
        self.max_seconds = max_seconds
        self.began = time.time()

    def update(self, done, extra=""):
        elapsed = time.time() - self.began
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        if self.max_seconds and rate > 0:
            eta = min(eta, self.max_seconds - elapsed)
        percent = 100.0 * done / self.total if self.total else 100.0
        per_item = f"{1 / rate:.2f}s/it" if rate > 0 else "-"
        eta_text = _clock(eta) if rate > 0 else "-"
        logging.info("%s", f"{self.label} {done}/{self.total} ({percent:.0f}%) {per_item} "
                     f"elapsed {_clock(elapsed)} ETA {eta_text} {extra}".strip())
