"""True streaming with external state: a trained chain model rebuilt to take only new frames.

``to_streaming(model)`` rebuilds a non-streaming model whose layers form a chain (DS-CNN built
with ``time_padding="valid"``) as a step model with the same weights::

    inputs:  new frames [1, hop, features], state_0, ..., state_k
    outputs: logits [1, labels],            new_state_0, ..., new_state_k

``hop`` is the product of the time strides. Each time convolution becomes a ``Stream`` layer
(keeping the rows it needs from earlier steps) and the global average pool a
``StreamingAveragePool`` over the non-streaming model's time length; per-row layers (BatchNorm,
ReLU, frequency padding, convs one row tall, Dense) run on the new rows only. So one step costs a
``hop``-frame slice of the network instead of a whole window.

Once the stream has filled a window (``warmup_steps``), step ``k``'s output equals the
non-streaming model's on the window of ``model.input_shape[1]`` frames ending at frame
``window_end(k)`` (the model's last ``(T - receptive) % hop`` frames are never used by a
valid-time network, which is why the end is not simply the newest frame).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.fixed_fake_quant import FixedFakeQuant
from tfkws.layers.stream import Stream, StreamingAveragePool, time_receptive

_CONV = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
_PER_ROW = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.Dense,
)


@dataclasses.dataclass
class StreamingModel:
    """The step model and how its steps line up with the non-streaming model's windows."""

    model: keras.Model
    hop: int  # new frames per step
    window: int  # frames of the non-streaming model's input
    used: int  # frames of the window the network reads (the first ``used`` frames)
    state_shapes: list[tuple[int, ...]]

    @property
    def warmup_steps(self) -> int:
        """Steps before the first output that equals a whole window's."""
        return -(-self.used // self.hop) - 1

    def window_end(self, step: int) -> int:
        """Last frame (exclusive) of the non-streaming window step ``step`` matches."""
        return (step + 1) * self.hop + (self.window - self.used)

    def zero_states(self) -> list[np.ndarray]:
        return [np.zeros(s, np.float32) for s in self.state_shapes]

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Logits ``[steps, labels]`` over ``frames`` ``[T, features]`` from zero state."""
        states = self.zero_states()
        outs = []
        for k in range(frames.shape[0] // self.hop):
            chunk = frames[None, k * self.hop : (k + 1) * self.hop].astype(np.float32)
            res = self.model([chunk, *states], training=False)
            outs.append(np.asarray(res[0])[0])
            states = [np.asarray(s) for s in res[1:]]
        return np.stack(outs) if outs else np.zeros((0, self.model.outputs[0].shape[-1]))


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers after its input, checked to form a chain (from the model's own config:
    a layer reused in other models has other inbound nodes too)."""
    entries = model.get_config()["layers"]
    for prev, entry in zip(entries, entries[1:], strict=False):
        nodes = entry["inbound_nodes"]
        inbound = [n[0] for node in nodes for n in node] if nodes else []
        if inbound != [prev["config"]["name"]]:
            raise TfkwsError(
                f"{model.name}: not a chain of layers ({entry['config']['name']} reads {inbound})"
            )
    return [model.get_layer(e["config"]["name"]) for e in entries[1:]]


def to_streaming(model: keras.Model) -> StreamingModel:
    """The step model of ``model`` (see the module doc); TfkwsError for a layer that cannot
    stream (a ``same``-in-time convolution, or any layer mixing time rows other than these)."""
    if len(model.inputs) != 1 or len(model.input_shape) != 3:
        raise TfkwsError(f"{model.name}: streaming needs one [batch, frames, features] input")
    window, feats = int(model.input_shape[1]), int(model.input_shape[2])
    layers = _chain(model)
    strides = [time_receptive(x)[1] for x in layers if isinstance(x, _CONV)]
    hop = int(np.prod(strides)) if strides else 1
    # frames the valid-time network reads: walk the receptive fields back from one output row
    used, scale = 1, 1
    for layer in layers:
        if isinstance(layer, _CONV):
            receptive, stride = time_receptive(layer)
            used += (receptive - 1) * scale
            scale *= stride
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            rows = int(layer.input_shape[1])
            used += (rows - 1) * scale
    new = keras.Input((hop, feats), batch_size=1, name="frames")
    states, new_states = [], []
    x, rows = new, hop
    last_fq: FixedFakeQuant | None = None
    for layer in layers:
        if isinstance(layer, keras.layers.Reshape):
            x = keras.layers.Reshape((rows, *layer.target_shape[1:]), name=layer.name)(x)
        elif isinstance(layer, keras.layers.Dropout):
            continue
        elif isinstance(layer, keras.layers.ZeroPadding2D):
            if tuple(layer.padding[0]) != (0, 0):
                raise TfkwsError(f"{layer.name}: padding along time cannot stream")
            x = layer(x)
        elif isinstance(layer, _CONV) and time_receptive(layer) == (1, 1):
            x = layer(x)  # pointwise along time: per row, no state
        elif isinstance(layer, _CONV):
            receptive, stride = time_receptive(layer)
            if layer.padding != "valid" and receptive > 1:
                raise TfkwsError(
                    f"{layer.name}: padding {layer.padding!r} along time cannot stream exactly "
                    "(build the model with time_padding=valid)"
                )
            if rows % stride:
                raise TfkwsError(f"{layer.name}: {rows} rows per step do not divide by stride")
            wrapper = Stream(layer, name=f"{layer.name}_stream")
            state = keras.Input(
                (max(receptive - stride, 0), *x.shape[2:]), batch_size=1, name=f"{layer.name}_state"
            )
            x, kept = wrapper([x, last_fq(state) if last_fq is not None else state])
            states.append(state)
            new_states.append(kept)
            rows //= stride
        elif isinstance(layer, keras.layers.GlobalAveragePooling2D):
            frames = int(layer.input_shape[1])
            state = keras.Input((frames - rows, *x.shape[2:]), batch_size=1, name="pool_state")
            fed = last_fq(state) if last_fq is not None else state
            x, kept = StreamingAveragePool(frames, name=f"{layer.name}_stream")([x, fed])
            states.append(state)
            new_states.append(kept)
            rows = 1
        elif isinstance(layer, FixedFakeQuant):  # its state inputs get the same int8 params
            x = layer(x)
            last_fq = layer
        elif isinstance(layer, _PER_ROW):
            x = layer(x)
        else:
            raise TfkwsError(f"{layer.name}: {type(layer).__name__} cannot stream")
    step = keras.Model([new, *states], [x, *new_states], name=f"{model.name}_streaming")
    shapes = [tuple(int(d) for d in s.shape) for s in states]
    return StreamingModel(step, hop, window, used, shapes)
