"""Pick a ``tf.distribute`` strategy: one CPU here, several GPUs or workers for larger setups.

``multiworker`` is TensorFlow's own ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``;
it must exist before the process runs its first TensorFlow op (collective ops are configured at
program startup), so ``tfkws train`` makes it first thing and hands it to the trainer.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tfkws.errors import TfkwsError

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker")


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """``auto``: MirroredStrategy over all GPUs if there are several, else one device.

    ``multiworker`` reads the cluster from ``TF_CONFIG`` (tf.distribute's own convention); its
    collectives use AUTO (NCCL on GPUs, ring over gRPC on CPUs).
    """
    if name not in STRATEGIES:
        raise TfkwsError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "multiworker":
        _check_tf_config()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except RuntimeError as err:  # TensorFlow already ran an op in this process
            raise TfkwsError(
                f"strategy multiworker: {err}; make it first thing in the process "
                "(tfkws train does), then pass it to train(strategy=...)"
            ) from None
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "auto" and len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def _check_tf_config() -> None:
    """A missing or malformed ``TF_CONFIG`` is a one-line error, not a TensorFlow traceback."""
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return  # one worker on its own: MultiWorkerMirroredStrategy runs it locally
    try:
        conf = json.loads(text)
        cluster, task = conf["cluster"], conf["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise TfkwsError(
            f"TF_CONFIG is not a tf.distribute cluster config ({err}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if task["type"] not in cluster:
        raise TfkwsError(f"TF_CONFIG: task type {task['type']!r} is not in the cluster")


def worker_index(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """``(this worker's index, number of workers)``; ``(0, 1)`` outside a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or not resolver.task_type:
        return 0, 1
    order = [t for t in ("chief", "worker") if t in spec]
    index, count = 0, 0
    for kind in order:
        if kind == resolver.task_type:
            index = count + int(resolver.task_id)
        count += len(spec[kind])
    return index, max(count, 1)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes the run folder: ``chief`` if the cluster has one, else worker 0."""
    return worker_index(strategy)[0] == 0


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Every worker waits here for the others (an all-reduce): files the chief wrote before it
    are complete for every worker reading them after it. A no-op with one worker."""
    if worker_index(strategy)[1] > 1:
        ones = strategy.run(lambda: tf.ones(()))
        strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None).numpy()
