"""``Stream`` and ``StreamingAveragePool``: layers over time that run one step at a time.

External state, as in kws_streaming: each layer takes the newest time rows and its state (the
rows it still needs from earlier steps) as inputs and returns its output rows and the new state as
outputs; the caller (or firmware) feeds the state outputs back in at the next step. TFLM then needs
no resource variables, and the int8 state tensors are plain model inputs/outputs.

``Stream`` wraps a convolution that is ``valid`` along time (axis 1): with ``n`` new rows and the
last ``receptive - stride`` rows kept, the valid conv over ``state ++ new`` yields exactly the
``n / stride`` output rows the non-streaming conv computes for those times. A convolution that is
``same`` along time cannot stream exactly (its window edges see zero padding, a stream sees real
frames), so the streamable model variants pad only frequency (e.g. ``ds_cnn`` with
``time_padding="valid"``).

``StreamingAveragePool`` is ``GlobalAveragePooling2D`` over the last ``frames`` rows: it keeps the
last ``frames - n`` rows whole and takes one mean over time and frequency, the very op the
non-streaming model runs, so int8 rounds alike (keeping only frequency means would need less
state but round twice).

``Delay`` holds a tensor back by a fixed number of rows: where a residual branch's time
convolution reads rows ahead of the shortcut's (a ``valid`` conv's output row is centred on
older rows than its newest input), the shortcut is delayed to meet it at the add.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras


def time_receptive(layer: keras.layers.Layer) -> tuple[int, int]:
    """(receptive field, stride) along time (axis 1) of a Conv2D / DepthwiseConv2D."""
    kernel = int(layer.kernel_size[0])
    dilation = int(layer.dilation_rate[0])
    return (kernel - 1) * dilation + 1, int(layer.strides[0])


@keras.utils.register_keras_serializable(package="tfkws")
class Stream(keras.layers.Layer):
    """A time-valid convolution stepped over a stream: ``(new, state) -> (out, new_state)``.

    ``new``: ``[B, n, F, C]`` with ``n`` a multiple of the time stride; ``state``:
    ``[B, receptive - stride, F, C]`` (zeros before the stream starts).
    """

    def __init__(self, cell: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell = cell
        self.receptive, self.stride = time_receptive(cell)
        if self.receptive < self.stride:
            raise ValueError(f"{cell.name}: a time stride beyond the kernel cannot stream")

    @property
    def state_rows(self) -> int:
        return max(self.receptive - self.stride, 0)

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        new, state = inputs
        buf = tf.concat([state, new], axis=1) if self.state_rows else new
        out = self.cell(buf)
        keep = buf[:, buf.shape[1] - self.state_rows :] if self.state_rows else state
        return [out, keep]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cell": keras.layers.serialize(self.cell),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Stream:
        config = dict(config)
        config["cell"] = keras.layers.deserialize(config["cell"])
        return cls(**config)


@keras.utils.register_keras_serializable(package="tfkws")
class StreamingAveragePool(keras.layers.Layer):
    """``GlobalAveragePooling2D`` over the last ``frames`` time rows: ``(new, state) ->
    (pooled, new_state)``; ``state`` holds the previous rows ``[B, frames - n, F, C]``."""

    def __init__(self, frames: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        new, state = inputs
        buf = tf.concat([state, new], axis=1)
        keep = self.frames - new.shape[1]
        return [tf.reduce_mean(buf, axis=[1, 2]), buf[:, buf.shape[1] - keep :]]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "frames": self.frames}


@keras.utils.register_keras_serializable(package="tfkws")
class Delay(keras.layers.Layer):
    """``(new, state) -> (rows delayed by len(state), new_state)``: the output is the ``n`` rows
    ``rows`` steps of rows before ``new``; ``state`` holds the last ``rows`` rows."""

    def __init__(self, rows: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows = int(rows)
        if self.rows < 1:
            raise ValueError(f"Delay needs rows >= 1, got {rows}")

    def call(self, inputs: list[tf.Tensor]) -> list[tf.Tensor]:
        new, state = inputs
        buf = tf.concat([state, new], axis=1)
        n = new.shape[1]
        return [buf[:, :n], buf[:, n:]]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rows": self.rows}
