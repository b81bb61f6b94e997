"""Blind denoising of bundled sample photos with the shipped model (`python -m durr_tf.demo`).

Uses scikit-image's sample photos (no dataset download), adds Gaussian noise of several σ
with fixed seeds, restores each noisy image blindly (the stop rule is not told σ: by default
the shipped learned stop) and prints σ, the σ the blind estimator reads, the steps used, and
PSNR before/after; writes demo.md, demo.json and demo.png.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data import degradations  # noqa: E402
from durr_tf.core import stop_rules  # noqa: E402
from durr_tf.evaluation import metrics  # noqa: E402
from durr_tf.inference.restorer import Restorer  # noqa: E402

SAMPLES = ("camera", "astronaut", "coffee")


def sample_images(names=SAMPLES, size=256):
    """Gray float [size,size,1] center crops of scikit-image's bundled sample photos."""
    from skimage import color, data, transform

    images = {}
    for name in names:
        image = getattr(data, name)()
        image = color.rgb2gray(image) if image.ndim == 3 else image / 255.0
        side = min(image.shape)
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        crop = transform.resize(image[top:top + side, left:left + side], (size, size),
                                anti_aliasing=True)
        images[name] = np.round(crop * 255).astype(np.float32)[..., None] / 255.0
    return images


def run_demo(cell, rule, sigmas, out_dir, seed=0):
    """Restores every sample at every σ, stopping by `rule`; returns the table rows and writes
    the outputs."""
    restorer = Restorer(cell, rule)
    images = sample_images()
    rows, panels = [], {}
    for i, (name, clean) in enumerate(images.items()):
        for sigma in sigmas:
            noisy = degradations.add_gaussian_noise(clean, sigma, (seed, 100 * i + sigma)).numpy()
            restored, steps = restorer(noisy)
            estimate = float(stop_rules.estimate_noise_sigma(tf.constant(noisy[None]))[0])
            rows.append({"image": name, "sigma": sigma, "sigma_estimated": round(estimate, 1),
                         "steps": int(steps[0]), "psnr_in": metrics.psnr(noisy, clean),
                         "psnr_out": metrics.psnr(restored, clean)})
            panels[(name, sigma)] = (noisy, restored)
    os.makedirs(out_dir, exist_ok=True)
    table = ["| image | σ | σ estimated | steps | PSNR in (dB) | PSNR out (dB) |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['image']} | {r['sigma']} | {r['sigma_estimated']} | {r['steps']} | "
              f"{r['psnr_in']:.2f} | {r['psnr_out']:.2f} |" for r in rows]
    with open(os.path.join(out_dir, "demo.md"), "w") as handle:
        handle.write("\n".join(table) + "\n")
    with open(os.path.join(out_dir, "demo.json"), "w") as handle:
        json.dump(rows, handle, indent=2)
    _figure(images, sigmas, panels, rows, os.path.join(out_dir, "demo.png"))
    return "\n".join(table)


def _figure(images, sigmas, panels, rows, path):
    """One row per photo: clean, then noisy and restored for each σ, PSNR in the titles."""
    psnr = {(r["image"], r["sigma"]): r for r in rows}
    columns = 1 + 2 * len(sigmas)
    fig, axes = plt.subplots(len(images), columns, figsize=(2.2 * columns, 2.4 * len(images)))
    axes = np.atleast_2d(axes)
    for row, (name, clean) in enumerate(images.items()):
        axes[row, 0].imshow(clean[..., 0], cmap="gray", vmin=0, vmax=1)
        axes[row, 0].set_title(f"{name} (clean)", fontsize=8)
        for k, sigma in enumerate(sigmas):
            noisy, restored = panels[(name, sigma)]
            r = psnr[(name, sigma)]
            axes[row, 1 + 2 * k].imshow(np.clip(noisy[..., 0], 0, 1), cmap="gray", vmin=0, vmax=1)
            axes[row, 1 + 2 * k].set_title(f"σ={sigma}: {r['psnr_in']:.2f} dB", fontsize=8)
            axes[row, 2 + 2 * k].imshow(np.clip(restored[..., 0], 0, 1), cmap="gray", vmin=0,
                                        vmax=1)
            axes[row, 2 + 2 * k].set_title(f"DURR, {r['steps']} steps: {r['psnr_out']:.2f} dB",
                                           fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
