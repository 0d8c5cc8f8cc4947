"""Exponential moving average of a model's weights (Polyak averaging), for the float phase.

Small keyword datasets leave the last epochs' weights noisy from batch to batch; the average of
the recent weights usually validates higher and is what gets exported. The average covers every
floating-point weight of the model, trainable or not (BatchNorm's moving statistics too, so an
averaged model is used with statistics that match it, as timm's ``ModelEmaV2`` does). Its shadow
variables go into the run's checkpoint, so a killed run resumes with the same average.

Keras's own ``use_ema`` optimizer option does not fit a trainer that calls ``fit`` once per
epoch: ``fit`` overwrites the model with the average at the end of every call, so training
would continue from the average instead of from its own weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import tensorflow as tf
import tf_keras as keras

# Early on the average follows the weights closely: decay min(decay, (1 + n) / (10 + n)) after
# n updates (the warm-up of TensorFlow's ExponentialMovingAverage with num_updates).
WARMUP_OFFSET = 10.0


class WeightAverage:
    """Shadow copies of ``model``'s float weights, updated after every training batch."""

    def __init__(self, model: keras.Model, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight-average decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.weights = [w for w in model.weights if w.dtype.is_floating]
        # Created in the caller's strategy scope, like the model's own variables.
        self.shadow = [
            tf.Variable(w.read_value(), trainable=False, name=f"average_{i}")
            for i, w in enumerate(self.weights)
        ]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="average_updates")

    def checkpoint_items(self) -> dict[str, tf.Variable | list[tf.Variable]]:
        """What a ``tf.train.Checkpoint`` needs to resume the average."""
        return {"average": self.shadow, "average_updates": self.updates}

    @tf.function
    def update(self) -> None:
        self.updates.assign_add(1)
        n = tf.cast(self.updates, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + n) / (WARMUP_OFFSET + n))
        for s, w in zip(self.shadow, self.weights, strict=True):
            s.assign(decay * s + (1.0 - decay) * w)

    def callback(self, val_data: Any = None) -> keras.callbacks.Callback:
        """A ``fit`` callback that updates the average after each training batch and, given
        ``val_data``, validates the average at each epoch's end: ``ema_val_accuracy`` in the
        epoch's logs (so in ``fit``'s history and in the callbacks listed after this one)."""
        return _AverageCallback(self, val_data)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights after."""
        own = [w.numpy() for w in self.weights]
        for w, s in zip(self.weights, self.shadow, strict=True):
            w.assign(s.read_value())
        try:
            yield
        finally:
            for w, value in zip(self.weights, own, strict=True):
                w.assign(value)


class _AverageCallback(keras.callbacks.Callback):
    def __init__(self, average: WeightAverage, val_data: Any) -> None:
        super().__init__()
        self.average, self.val_data = average, val_data

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.average.update()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.val_data is None or logs is None:
            return
        with self.average.swapped():
            result = self.model.evaluate(self.val_data, verbose=0, return_dict=True)
        logs["ema_val_accuracy"] = float(result["accuracy"])
