"""Pick a ``tf.distribute`` strategy: one CPU here, several GPUs or workers for larger setups."""

from __future__ import annotations

import tensorflow as tf

from tfkws.errors import TfkwsError

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker")


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over all GPUs if there are several, else one device.

    ``multiworker`` reads the cluster from ``TF_CONFIG`` (tf.distribute's own convention).
    """
    if name not in STRATEGIES:
        raise TfkwsError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "auto" and len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.OneDeviceStrategy("/cpu:0")
