"""durr-tf: the Dynamically Unfolding Recurrent Restorer (DURR) in TensorFlow.

The modules directly under `durr_tf` are the command lines (`python -m durr_tf.NAME`); the
library lives in sub-packages, one per concern:

- `core`: the U-Net cell, its Euler unrolling and tiling, the tasks, the stop rules and the
  restorer files (weights + card), with the shipped ones in `durr_tf/pretrained`;
- `training`: the trainer, a run's history and curves, the model cards a run ships with;
- `inference`: restoring images and files, the serving SavedModel, the demo;
- `evaluation`: stop rules scored on whole sets, metrics, the peer networks;
- `tools`: research commands (benchmark, ablation, inference timing, encoder studies, curves).

The names below are the Python API of the README.
"""

from durr_tf.core.restorer_io import load_restorer
from durr_tf.core.stop_rules import parse_stop_rule
from durr_tf.inference.restorer import Restorer

__all__ = ["Restorer", "load_restorer", "parse_stop_rule"]
