"""One line per epoch from tfkws (Keras's own progress is off unless ``tfkws --verbose``).

``epoch 3/14  loss 0.812  accuracy 71.2 %  val accuracy 68.5 %  41 s  ETA 7 min 30 s``: the
trainer calls ``fit`` once per epoch, so the line counts epochs of the whole run and the ETA is
the mean epoch time of this process times the epochs left.
"""

from __future__ import annotations

import time
from typing import Any

import tf_keras as keras

from tfkws.progress import format_seconds


class EpochLine(keras.callbacks.Callback):
    """Prints one line at the end of every epoch; keep one instance across the ``fit`` calls."""

    def __init__(self, total_epochs: int, tag: str = "") -> None:
        super().__init__()
        self.total, self.tag = total_epochs, tag
        self.seconds: list[float] = []
        self._t = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._t = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.seconds.append(time.monotonic() - self._t)
        print(epoch_line(epoch, self.total, logs or {}, self.seconds, self.tag), flush=True)


def epoch_line(
    epoch: int, total: int, logs: dict[str, Any], seconds: list[float], tag: str = ""
) -> str:
    """The line for 0-based ``epoch`` of ``total``, from Keras ``logs`` and epoch times so far."""
    parts = [f"epoch {epoch + 1}/{total}{tag}"]
    if "loss" in logs:
        parts.append(f"loss {logs['loss']:.4f}")
    if "accuracy" in logs:
        parts.append(f"accuracy {100 * logs['accuracy']:.1f} %")
    if "val_accuracy" in logs:
        parts.append(f"val accuracy {100 * logs['val_accuracy']:.1f} %")
    if "ema_val_accuracy" in logs:  # training with a weight average (--ema_decay)
        parts.append(f"averaged {100 * logs['ema_val_accuracy']:.1f} %")
    parts.append(format_seconds(seconds[-1]))
    left = total - (epoch + 1)
    if left > 0:
        parts.append(f"ETA {format_seconds(left * sum(seconds) / len(seconds))}")
    return "  ".join(parts)
