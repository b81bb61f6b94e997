"""The shipped restorers: their files, their cards, and figures that must hold on any machine."""

import json
import os

import numpy as np
import pytest

from data import degradations, sets
from durr_tf.evaluation import evaluator, metrics
from durr_tf.core import restorer_io, stop_rules, tasks
from durr_tf.inference.demo import sample_images
from durr_tf.inference.restorer import Restorer


@pytest.fixture(scope="module")
def shipped():
    return restorer_io.load_restorer("denoise")


SHIPPED = ["denoise", "deblock", "denoise_color"]


def _checked(task, check):
    """The oracle and the learned stop of the task's shipped restorer and policy on the first
    images of the set a card's check names (the two cards check the same images, so one
    trajectory per image serves both; it ends once the learned stop has stopped and the PSNR is
    past its peak)."""
    cell, _ = restorer_io.load_restorer(task)
    files = sets.resolve(check["set"])[:check["images"]]
    return evaluator.evaluate(cell, tasks.get(task), files, check["levels"], ["oracle", "learned"])


@pytest.mark.parametrize("task, channels, parameters", [
    ("denoise", 1, 174_577), ("deblock", 1, 174_577), ("denoise_color", 3, 175_155)])
def test_card_describes_the_weights(task, channels, parameters):
    cell, card = restorer_io.load_restorer(task)
    assert card["parameters"] == cell.count_params() == parameters
    assert card["task"] == task and card["channels"] == channels
    for key in ("command", "data", "train_steps", "wall_time_hours", "machine", "evaluation"):
        assert key in card, key


def test_blind_restore_gains_on_a_bundled_photo(shipped):
    cell, _ = shipped
    restorer = Restorer(cell, stop_rules.EstimatedLevelRule())
    clean = sample_images(["camera"], size=128)["camera"]
    for sigma, gain in ((25, 7.0), (50, 10.0)):
        noisy = degradations.add_gaussian_noise(clean, sigma, (0, sigma)).numpy()
        restored, steps = restorer(noisy)
        assert metrics.psnr(restored, clean) > metrics.psnr(noisy, clean) + gain
        assert 1 <= steps[0] <= 30


def test_denoising_with_its_default_stop_gains_on_a_bundled_photo_at_seen_and_unseen_sigma():
    """`restore --task denoise` stops with the shipped policy: it unrolls longer at higher σ,
    up to the unseen σ = 75, and gains at each."""
    cell, _ = restorer_io.load_restorer("denoise")
    rule = stop_rules.parse_stop_rule(tasks.get("denoise").default_stop, "denoise")
    assert isinstance(rule, stop_rules.LearnedStopRule) and rule.step_heads
    restorer = Restorer(cell, rule)
    clean = sample_images(["camera"], size=128)["camera"]
    steps = {}
    for sigma, gain in ((15, 5.0), (25, 7.0), (75, 10.0)):  # measured: 8.1, 10.2, 12.8 dB
        noisy = degradations.add_gaussian_noise(clean, sigma, (0, sigma)).numpy()
        restored, steps[sigma] = restorer(noisy)
        assert metrics.psnr(restored, clean) > metrics.psnr(noisy, clean) + gain
    assert 1 <= steps[15][0] < steps[25][0] < steps[75][0] <= 30


def test_deblocking_with_its_default_stop_gains_on_a_bundled_photo_at_unseen_qualities():
    """`restore --task deblock` stops with the shipped policy, which reads the quality off the
    JPEG's table: it unrolls longer at QF 10 than at QF 40 and gains at both."""
    cell, _ = restorer_io.load_restorer("deblock")
    task = tasks.get("deblock")
    rule = stop_rules.parse_stop_rule(task.default_stop, "deblock")
    assert isinstance(rule, stop_rules.LearnedStopRule)
    restorer = Restorer(cell, rule, 30, "luma")
    clean = sample_images(["camera"], size=128)["camera"]
    steps = {}
    for quality, gain in ((10, 1.0), (40, 1.0)):  # measured: 1.9 and 2.7 dB, 15 and 3 steps
        jpeg = task.degrade(clean, quality, (0, 0))
        restored, steps[quality] = restorer(jpeg)
        assert metrics.psnr(restored, clean) > metrics.psnr(jpeg, clean) + gain
    assert steps[10][0] > steps[40][0] >= 1


def test_color_denoising_with_its_default_stop_gains_on_a_bundled_color_photo():
    """`restore --task denoise_color` stops with the shipped color policy, read by step heads."""
    from skimage import data, transform

    clean = transform.resize(data.astronaut()[:256, 128:384], (128, 128), anti_aliasing=True)
    clean = (np.round(clean * 255) / 255).astype(np.float32)
    cell, _ = restorer_io.load_restorer("denoise_color")
    rule = stop_rules.parse_stop_rule(tasks.get("denoise_color").default_stop, "denoise_color")
    assert isinstance(rule, stop_rules.LearnedStopRule) and rule.step_heads
    restorer = Restorer(cell, rule)
    for sigma, gain in ((25, 8.0), (50, 10.0)):  # measured: 11.4 and 13.1 dB (4 and 10 steps)
        noisy = degradations.add_gaussian_noise(clean, sigma, (1, sigma)).numpy()
        restored, steps = restorer(noisy)
        assert restored.shape == clean.shape
        assert metrics.psnr(restored, clean) > metrics.psnr(noisy, clean) + gain
        assert 1 <= steps[0] <= 30


@pytest.mark.parametrize("task", SHIPPED)
def test_policy_card_describes_the_shipped_policy(task):
    card = json.load(open(os.path.join(restorer_io.pretrained_policy(task), "card.json")))
    assert card["task"] == task
    for key in ("command", "training", "policy_iteration", "held_out_evaluation",
                "run_iterations", "wall_time_hours", "machine", "parameters", "evaluation",
                "check"):
        assert key in card, key
    rule = stop_rules.parse_stop_rule("learned", task)
    assert rule.parameters == card["parameters"]


@pytest.mark.skipif(not os.environ.get("DURR_DATA_DIR"), reason="needs DURR_DATA_DIR")
@pytest.mark.parametrize("task", SHIPPED)
def test_shipped_restorer_and_policy_reproduce_their_cards(task):
    """On the first benchmark images at a seen and an unseen level, the restorer gives its
    card's oracle PSNR and the learned stop picks its policy card's steps (±1 for float rounding
    across machines near a tie of the two Q-values)."""
    check = restorer_io.load_restorer(task)[1]["check"]
    policy_card = json.load(open(os.path.join(restorer_io.pretrained_policy(task), "card.json")))
    policy_check = policy_card["check"]
    same = ("set", "images", "levels")
    assert [policy_check[key] for key in same] == [check[key] for key in same]
    results = _checked(task, check)
    for level, expected in check["oracle_psnr"].items():
        measured = results["levels"][level]["rules"]["oracle"]["psnr"]
        assert measured == pytest.approx(expected, abs=0.01), level
    for level, expected in policy_check["steps"].items():
        chosen = results["levels"][level]["rules"]["learned"]["steps"]
        assert np.abs(np.subtract(chosen, expected)).max() <= 1, (level, chosen, expected)
