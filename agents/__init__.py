"""The learned stop policy (DURR's policy unit), trained with TF-Agents' DQN.

TF-Agents is built on Keras 2 (tf-keras); TensorFlow picks Keras 2 for `tf.keras` only if
TF_USE_LEGACY_KERAS=1 is set before `tf.keras` is first used, so the package sets it here.
The restorer (durr_tf) uses Keras 3 through `import keras` and is unaffected.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
