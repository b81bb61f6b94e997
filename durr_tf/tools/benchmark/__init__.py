"""durr-tf beside its peers on the same degraded images, in one run on one machine.

BM3D and CBM3D told the true σ, DnCNN-B and DnCNN-3 rebuilt from their released weights
(`durr_tf.evaluation.peers`), and durr-tf with its learned stop, its blind σ/QF-estimate stop,
the oracle stop and the best fixed N restore the same inputs: Gaussian noise from fixed seeds on
BSD68 and on CBSD68's RGB, PIL JPEG of LIVE1's Y channel. The tables print the papers' published
figures beside ours.

- `methods`: the methods, the levels, the published figures (`published.json`, with each
  figure's paper and table), the runners and the peer check;
- `cache`: one file per (task, method, level), so that a killed run resumes;
- `figures`: PSNR against level, peak step, image panels, real noisy photos;
- `report`: the Markdown tables, results.json and the docs page's results section;
- `__main__`: the command, `python -m durr_tf.tools.benchmark`.
"""
