import os

import pytest

from data import sets
from data.images import read_image
from durr_tf.evaluation import metrics, peers
from durr_tf.core import tasks

PEERS = os.environ.get("DURR_PEERS_DIR", "")
DNCNN_B = os.path.join(PEERS, "dncnn_b", "GD_Gray_Blind.mat")


@pytest.mark.skipif(not os.path.exists(DNCNN_B), reason="needs DURR_PEERS_DIR with DnCNN-B")
def test_dncnn_b_rebuilt_from_its_weights():
    model = peers.dncnn(DNCNN_B)
    assert model.count_params() == 665_921
    stack = peers.read_simplenn(DNCNN_B)
    assert sum(entry != "relu" for entry in stack) == 20 and stack[-1][0].shape == (3, 3, 64, 1)


@pytest.mark.skipif(not (os.path.exists(DNCNN_B) and os.environ.get("DURR_DATA_DIR")),
                    reason="needs DURR_PEERS_DIR and DURR_DATA_DIR")
def test_dncnn_b_denoises_a_bsd68_image_as_published():
    """On test001 at σ=25 the released DnCNN-B gives about 25.9 dB (peers/SOURCES.md, with
    another noise draw); a wrongly laid out kernel gives far less."""
    clean = read_image(sets.resolve("BSD68")[0])[0]
    noisy = tasks.get("denoise").degrade(clean, 25, (0, 25))
    restored = peers.dncnn(DNCNN_B)(noisy[None]).numpy()[0]
    assert metrics.psnr(restored, clean) == pytest.approx(25.9, abs=0.3)
