"""tfkws: keyword spotting from audio to a Cortex-M microcontroller.

tfmot needs Keras 2, so the legacy Keras flag is set before anything imports TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
