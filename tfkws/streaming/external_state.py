"""True streaming with external state: a trained model rebuilt to take only new frames.

``to_streaming(model)`` rebuilds a non-streaming functional model whose time convolutions are
``valid`` along time (DS-CNN, RepCNN, ``slimmable_tc_cnn`` widths and BC-ResNet built with
``time_padding="valid"``) as a step model with the same weights::

    inputs:  new frames [1, hop, features], state_0, ..., state_k
    outputs: logits [1, labels],            new_state_0, ..., new_state_k

``hop`` is the largest product of time strides along a path. The graph is walked node by node
(a DAG: residual adds and broadcasts too). Each time convolution becomes a ``Stream`` layer
(keeping the rows it needs from earlier steps) and the global average pool a
``StreamingAveragePool`` over the non-streaming model's time length; per-row layers (BatchNorm,
ReLU, frequency padding/pooling, SubSpectralNorm, convs one row tall, Dense) run on the new rows
only. So one step costs a ``hop``-frame slice of the network instead of a whole window.

Alignment. In the non-streaming model, row ``j`` of a tensor ends (its newest frame, exclusive)
at ``start + first_end + j * stride`` frames; in the stream, a tensor's newest row ends
``lag`` frames before the newest frame. A valid conv keeps ``lag`` (its output row ends where its
newest input row ends) and adds ``(receptive - 1) * stride`` to ``first_end``; a time crop
(``Cropping2D``, the valid form of a residual's shortcut) is free in the stream and adds
``top * stride`` to ``first_end``. An add, multiply or concatenation pairs row ``j`` of each input,
so its inputs must have equal ``lag + first_end``: the input short of the largest is held back by
a ``Delay`` of the difference in rows (BC-ResNet's shortcut and frequency branch wait for the
temporal branch's dilated conv, which reads rows ahead of them).

Once the stream has filled a window (``warmup_steps``), step ``k``'s output equals the
non-streaming model's on the window of ``model.input_shape[1]`` frames ending at frame
``window_end(k)`` (the model's last ``(T - used) % hop`` frames are never used by a
valid-time network, and delays make the output lag, so the end is not simply the newest frame).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.layers.dot_product_attention import DotProductAttention
from tfkws.layers.fixed_fake_quant import FixedFakeQuant
from tfkws.layers.slimmable_base import SlimmableLayer
from tfkws.layers.stream import Delay, Stream, StreamingAveragePool, time_receptive
from tfkws.layers.sub_spectral_norm import SubSpectralNorm

_CONV = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
_POOL = (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)
_MERGE = (
    keras.layers.Add,
    keras.layers.Multiply,
    keras.layers.Subtract,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Average,
    keras.layers.Concatenate,
)
_PER_ROW = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.Dense,
    SubSpectralNorm,
)
_ATTENTION = (DotProductAttention, keras.layers.MultiHeadAttention)
_IDENTITY = (keras.layers.Dropout, keras.layers.GaussianNoise, keras.layers.GaussianDropout)


@dataclasses.dataclass
class StreamingModel:
    """The step model and how its steps line up with the non-streaming model's windows."""

    model: keras.Model
    hop: int  # new frames per step
    window: int  # frames of the non-streaming model's input
    used: int  # frames of the window the network reads (the first ``used`` frames)
    state_shapes: list[tuple[int, ...]]
    lag: int = 0  # frames the output lags the newest frame (delays before residual adds)

    @property
    def warmup_steps(self) -> int:
        """Steps before the first output that equals a whole window's."""
        return -(-(self.used + self.lag) // self.hop) - 1

    def window_end(self, step: int) -> int:
        """Last frame (exclusive) of the non-streaming window step ``step`` matches."""
        return (step + 1) * self.hop - self.lag + (self.window - self.used)

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


@dataclasses.dataclass
class _Tensor:
    """A tensor of the non-streaming model and its streaming twin (see the module doc)."""

    stride: int  # frames per row
    first_end: int  # frames from the window start to the end of row 0
    rows: int  # rows in the non-streaming model
    x: Any = None  # the streaming tensor: hop // stride new rows per step
    lag: int = 0  # frames its newest streaming row ends before the newest frame
    fq: FixedFakeQuant | None = None  # the fake quant that made it (its states share params)
    pooled: bool = False  # no time axis left (after the global pool)


def layer_calls(model: keras.Model) -> Iterator[Any]:
    """The model's layer calls in an order where every input is made before it is read."""
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.is_input:
                yield node


def _inputs(node: Any) -> list[Any]:
    return list(node.keras_inputs)


def _time_pad(layer: keras.layers.Layer) -> tuple[int, int]:
    return tuple(int(p) for p in layer.padding[0])  # type: ignore[return-value]


class _Builder:
    """Walks the model twice: strides (for ``hop``), then the step graph."""

    def __init__(self, model: keras.Model, per_row: tuple[type, ...]) -> None:
        self.model = model
        self.per_row = _PER_ROW + per_row
        self.states: list[Any] = []
        self.new_states: list[Any] = []
        self.hop = 1

    def _state(self, t: _Tensor, rows: int, name: str) -> Any:
        """A state input of ``rows`` rows of ``t`` (fake-quantized as ``t`` is)."""
        state = keras.Input((rows, *t.x.shape[2:]), batch_size=1, name=name)
        self.states.append(state)
        return t.fq(state) if t.fq is not None else state

    def _check_rows(self, layer: keras.layers.Layer, ins: Sequence[_Tensor]) -> None:
        if any(t.pooled for t in ins):
            raise TfkwsError(f"{layer.name}: reads a pooled tensor and cannot stream")

    def apply(self, node: Any, ins: list[_Tensor]) -> _Tensor:
        layer = node.layer
        t = ins[0]
        if isinstance(layer, _IDENTITY):
            return t
        if isinstance(layer, keras.Model):
            raise TfkwsError(f"{layer.name}: nested models cannot stream (flatten it first)")
        if callable(getattr(layer, "fold_layer", None)):
            raise TfkwsError(f"{layer.name}: fold the model first (tfkws.folding.fold.fold_model)")
        if isinstance(layer, SlimmableLayer):
            raise TfkwsError(f"{layer.name}: cut one width out first (tfkws slim extract)")
        if isinstance(layer, FixedFakeQuant):
            return dataclasses.replace(t, x=layer(t.x), fq=layer)
        if t.pooled and isinstance(layer, self.per_row):
            return dataclasses.replace(t, x=layer(t.x), fq=None)
        self._check_rows(layer, ins)
        if isinstance(layer, _MERGE):
            return self._merge(layer, ins)
        if len(ins) != 1:
            raise TfkwsError(
                f"{layer.name}: {type(layer).__name__} of several inputs cannot stream"
            )
        rows = self.hop // t.stride
        if isinstance(layer, keras.layers.Reshape):
            target = tuple(layer.target_shape)
            if target[0] != t.rows:
                raise TfkwsError(f"{layer.name}: a reshape across time rows cannot stream")
            x = keras.layers.Reshape((rows, *target[1:]), name=layer.name)(t.x)
            return dataclasses.replace(t, x=x, fq=None)
        if isinstance(layer, keras.layers.ZeroPadding2D):
            if _time_pad(layer) != (0, 0):
                raise TfkwsError(
                    f"{layer.name}: padding along time cannot stream exactly "
                    "(build the model with time_padding=valid)"
                )
            return dataclasses.replace(t, x=layer(t.x), fq=None)
        if isinstance(layer, keras.layers.Cropping2D):
            top, bottom = (int(c) for c in layer.cropping[0])
            x = t.x
            if tuple(layer.cropping[1]) != (0, 0):
                x = keras.layers.Cropping2D(((0, 0), layer.cropping[1]), name=layer.name)(x)
            return dataclasses.replace(
                t,
                x=x,
                first_end=t.first_end + top * t.stride,
                rows=t.rows - top - bottom,
            )
        if isinstance(layer, _CONV):
            return self._conv(layer, t, rows)
        if isinstance(layer, _POOL):
            if int(layer.pool_size[0]) != 1 or int(layer.strides[0]) != 1:
                raise TfkwsError(f"{layer.name}: pooling along time cannot stream")
            return dataclasses.replace(t, x=layer(t.x), fq=None)
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            used = t.first_end + (t.rows - 1) * t.stride
            if t.rows < rows:
                raise TfkwsError(f"{layer.name}: pools {t.rows} rows, fewer than a step's {rows}")
            if t.rows == rows:  # the pool reads only the newest rows: no state
                return _Tensor(t.stride, used, 1, layer(t.x), t.lag, None, pooled=True)
            state = self._state(t, t.rows - rows, f"{layer.name}_state")
            x, kept = StreamingAveragePool(t.rows, name=f"{layer.name}_stream")([t.x, state])
            self.new_states.append(kept)
            return _Tensor(t.stride, used, 1, x, t.lag, None, pooled=True)
        if isinstance(layer, self.per_row):
            return dataclasses.replace(t, x=layer(t.x), fq=None)
        raise TfkwsError(f"{layer.name}: {type(layer).__name__} cannot stream")

    def _conv(self, layer: keras.layers.Layer, t: _Tensor, rows: int) -> _Tensor:
        receptive, stride = time_receptive(layer)
        if (receptive, stride) == (1, 1):  # one row tall: per row, no state
            return dataclasses.replace(t, x=layer(t.x), fq=None)
        if layer.padding != "valid":
            raise TfkwsError(
                f"{layer.name}: padding {layer.padding!r} along time cannot stream exactly "
                "(build the model with time_padding=valid)"
            )
        if rows % stride:
            raise TfkwsError(f"{layer.name}: {rows} rows per step do not divide by stride")
        if receptive <= stride:  # reads only the newest rows: no state
            if receptive < stride:
                raise TfkwsError(f"{layer.name}: a time stride beyond the kernel cannot stream")
            x = layer(t.x)
        else:
            state = self._state(t, receptive - stride, f"{layer.name}_state")
            x, kept = Stream(layer, name=f"{layer.name}_stream")([t.x, state])
            self.new_states.append(kept)
        return _Tensor(
            t.stride * stride,
            t.first_end + (receptive - 1) * t.stride,
            (t.rows - receptive) // stride + 1,
            x,
            t.lag,
        )

    def _merge(self, layer: keras.layers.Layer, ins: list[_Tensor]) -> _Tensor:
        if isinstance(layer, keras.layers.Concatenate) and layer.axis in (1, -3):
            raise TfkwsError(f"{layer.name}: a concatenation along time cannot stream")
        if len({t.stride for t in ins}) != 1:
            raise TfkwsError(f"{layer.name}: its inputs have different time strides")
        stride = ins[0].stride
        align = max(t.lag + t.first_end for t in ins)
        xs = []
        for i, t in enumerate(ins):
            gap = align - t.lag - t.first_end
            if gap % stride:
                raise TfkwsError(f"{layer.name}: input {i} is {gap} frames off its stride grid")
            if gap:
                state = self._state(t, gap // stride, f"{layer.name}_delay{i}_state")
                x, kept = Delay(gap // stride, name=f"{layer.name}_delay{i}")([t.x, state])
                self.new_states.append(kept)
                xs.append(x)
            else:
                xs.append(t.x)
        t = max(ins, key=lambda u: u.first_end)
        rows = min(u.rows for u in ins)
        return _Tensor(stride, t.first_end, rows, layer(xs), align - t.first_end)

    def strides(self) -> int:
        """The hop: the largest time stride of any tensor (each must divide it)."""
        seen: dict[int, int] = {id(self.model.inputs[0]): 1}
        for node in layer_calls(self.model):
            s = max(seen[id(x)] for x in _inputs(node))
            layer = node.layer
            if isinstance(layer, _CONV):
                s *= time_receptive(layer)[1]
            for y in node.outputs if isinstance(node.outputs, list) else [node.outputs]:
                seen[id(y)] = s
        hop = max(seen.values())
        if any(hop % s for s in seen.values()):
            raise TfkwsError(f"{self.model.name}: time strides {sorted(set(seen.values()))} differ")
        return hop

    def build(self) -> StreamingModel:
        model = self.model
        window, feats = int(model.input_shape[1]), int(model.input_shape[2])
        self.hop = self.strides()
        new = keras.Input((self.hop, feats), batch_size=1, name="frames")
        tensors = {id(model.inputs[0]): _Tensor(1, 1, window, new)}
        for node in layer_calls(model):
            ins = [tensors[id(x)] for x in _inputs(node)]
            out = self.apply(node, ins)
            outputs = node.outputs if isinstance(node.outputs, list) else [node.outputs]
            if len(outputs) != 1:
                raise TfkwsError(f"{node.layer.name}: a layer of several outputs cannot stream")
            tensors[id(outputs[0])] = out
        out = tensors[id(model.outputs[0])]
        if not out.pooled:
            raise TfkwsError(
                f"{model.name}: streaming needs a global average pool before the output"
            )
        step = keras.Model(
            [new, *self.states], [out.x, *self.new_states], name=f"{model.name}_streaming"
        )
        shapes = [tuple(int(d) for d in s.shape) for s in self.states]
        return StreamingModel(step, self.hop, window, out.first_end, shapes, out.lag)


def to_streaming(model: keras.Model, per_row: tuple[type, ...] = ()) -> StreamingModel:
    """The step model of ``model`` (see the module doc); TfkwsError for a layer that cannot
    stream (a ``same``-in-time convolution, or any layer mixing time rows other than these).
    ``per_row``: further layer types that act on each time row alone."""
    if len(model.inputs) != 1 or len(model.input_shape) != 3 or len(model.outputs) != 1:
        raise TfkwsError(f"{model.name}: streaming needs one [batch, frames, features] input")
    for layer in model.layers:
        if isinstance(layer, _ATTENTION):
            # checked first: the padding or reshape a Conformer or KWT meets earlier would ask
            # for a time_padding these models do not have
            raise TfkwsError(
                f"{layer.name}: self-attention mixes every row of the window and has no step "
                "form here; stream this model as a sliding window (a full-window Invoke every "
                "hop: tfkws detect on its exported model)"
            )
    return _Builder(model, tuple(per_row)).build()
