"""Shared machinery of slimmable layers: the width list, the run-time width switch, masks.

Design of the width switch (why a variable and masking, not Python attributes and slicing):

* Every slimmable layer holds the same sorted list ``widths`` (fractions of its full channel
  count) in its config and an int32 **width index** ``tf.Variable``. ``set_width(model, w)``
  assigns the index on every slimmable layer of a model. Because the index is a tensor, one
  traced ``tf.function`` (``model.fit``'s train function, the sandwich train step that samples
  random widths in-graph) serves every width; nothing is retraced when the width changes.
* Slicing would change tensor shapes with the width, so a traced graph could not switch width.
  Layers therefore compute at full size and **zero the inactive channels** of their output
  (consistently: a zero input channel contributes nothing downstream). ``extract_width`` then
  cuts out the truly smaller network, whose outputs equal the supernet's active channels.
* The index variable is run-time state, not a weight: it is created without automatic
  dependency tracking, so it is neither counted by ``count_params`` nor saved in weight files
  or checkpoints (a freshly loaded supernet runs at its largest width).

Active channel counts round ``total * width`` to a multiple of ``divisor`` (at least
``divisor``); a layer's input follows the same rule on its input channel count, so consecutive
layers of one model with one ``divisor`` agree on which channels are live.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError

DEFAULT_WIDTHS: tuple[float, ...] = (0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.875, 1.0)
_WIDTH_TOL = 1e-6


def active_units(total: int, width: float, divisor: int = 1) -> int:
    """Live channels of a ``total``-channel tensor at ``width`` (a multiple of ``divisor``)."""
    n = int(math.floor(total * width / divisor + 0.5)) * divisor
    return min(int(total), max(int(divisor), n))


def conv_output_hw(
    shape: tf.TensorShape, kernel_size: Sequence[int], strides: Sequence[int], padding: str
) -> list[int | None]:
    """Output rows and columns of a 2-D convolution over ``shape`` [batch, rows, cols, ch]."""
    out: list[int | None] = []
    for axis in range(2):
        n, k, s = shape[1 + axis], kernel_size[axis], strides[axis]
        if n is None:
            out.append(None)
        elif padding == "same":
            out.append(-(-n // s))
        else:
            out.append((n - k) // s + 1)
    return out


def check_widths(widths: Sequence[float]) -> tuple[float, ...]:
    """Validated widths: strictly increasing, in (0, 1], the last one 1.0 (the full network)."""
    ws = tuple(float(w) for w in widths)
    if not ws:
        raise ModelError("slimmable layer: 'widths' must list at least one width")
    if any(b <= a for a, b in zip(ws, ws[1:], strict=False)):
        raise ModelError(f"slimmable layer: widths must be strictly increasing, got {ws}")
    if ws[0] <= 0.0 or abs(ws[-1] - 1.0) > _WIDTH_TOL:
        raise ModelError(f"slimmable layer: widths must lie in (0, 1] and end at 1.0, got {ws}")
    return ws


def width_index(widths: Sequence[float], width: float) -> int:
    """Index of ``width`` in ``widths``; a clear error for a width the supernet lacks."""
    for i, w in enumerate(widths):
        if abs(w - float(width)) <= _WIDTH_TOL:
            return i
    raise ModelError(
        f"width {width} is not one of the supernet's widths ({', '.join(map(str, widths))})"
    )


class SlimmableLayer(keras.layers.Layer):
    """Base of slimmable / switchable layers: ``widths``, ``divisor`` and the width index.

    Subclasses call ``self._create_width_index()`` in ``build`` and implement
    ``extract(index)`` (plain Keras layer(s) applying this layer's slice at width ``index``)
    and ``macs(index)`` (multiply-accumulates of one example at that width).
    """

    def __init__(
        self, widths: Sequence[float] = DEFAULT_WIDTHS, divisor: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.widths = check_widths(widths)
        self.divisor = int(divisor)
        if self.divisor < 1:
            raise ModelError(f"{self.name}: divisor must be >= 1, got {divisor}")
        self._width_var: tf.Variable | None = None

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _create_width_index(self) -> None:
        """The width switch: an untracked int32 variable (see the module docstring)."""
        if self._width_var is None:
            with tf.init_scope():
                self._width_var = tf.Variable(
                    len(self.widths) - 1,
                    dtype=tf.int32,
                    trainable=False,
                    name=f"{self.name}_width_index",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )

    @property
    def width_variable(self) -> tf.Variable:
        if self._width_var is None:
            raise ModelError(f"{self.name}: build the layer before switching its width")
        return self._width_var

    @property
    def index(self) -> int:
        """Current width index (eager)."""
        return int(self.width_variable.numpy())

    def counts(self, total: int) -> list[int]:
        """Live channels of a ``total``-channel tensor at every width."""
        return [active_units(total, w, self.divisor) for w in self.widths]

    def live(self, total: int, index: int | None = None) -> int:
        """Live channels at ``index`` (default: the current width)."""
        i = self.index if index is None else int(index)
        return self.counts(total)[i]

    def active_count(self, total: int) -> tf.Tensor:
        """Live channels at the current width, as an int32 tensor (graph-safe)."""
        return tf.gather(tf.constant(self.counts(total), tf.int32), self.width_variable)

    def channel_mask(self, total: int, dtype: tf.DType) -> tf.Tensor:
        """[total] 1.0 for live channels, 0.0 for inactive ones, at the current width."""
        return tf.cast(tf.range(total) < self.active_count(total), dtype)

    def extract(self, index: int) -> Any:
        raise NotImplementedError

    def macs(self, index: int) -> int:
        return 0

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(widths=list(self.widths), divisor=self.divisor)
        return config


def slimmable_layers(model: Any) -> list[SlimmableLayer]:
    """Every slimmable layer inside ``model`` (nested models and wrappers included)."""
    found: dict[int, SlimmableLayer] = {}
    candidates: Iterable[Any] = [model, *getattr(model, "submodules", ())]
    for m in candidates:
        if isinstance(m, SlimmableLayer):
            found[id(m)] = m
    return list(found.values())


def model_widths(model: Any) -> tuple[float, ...]:
    """The widths shared by all slimmable layers of ``model`` (an error if they disagree)."""
    layers = slimmable_layers(model)
    if not layers:
        raise ModelError(f"model {getattr(model, 'name', model)!r} has no slimmable layers")
    widths = layers[0].widths
    for layer in layers[1:]:
        if layer.widths != widths:
            raise ModelError(
                f"slimmable layers disagree on widths: {layers[0].name} has {widths}, "
                f"{layer.name} has {layer.widths}"
            )
    return widths


def set_width_index(model: Any, index: int | tf.Tensor) -> None:
    """Switch every slimmable layer of ``model`` to width ``index`` (eager or in tf.function)."""
    for layer in slimmable_layers(model):
        layer.width_variable.assign(index)


def set_width(model: Any, width: float) -> int:
    """Switch ``model`` to ``width`` (one of its widths); returns the width index."""
    index = width_index(model_widths(model), width)
    set_width_index(model, index)
    return index


def model_macs(model: Any, index: int) -> int:
    """Multiply-accumulates of one example through the slimmable layers at width ``index``.

    Non-slimmable layers (pooling, activations, adds) are ignored: they are negligible.
    """
    return int(sum(layer.macs(index) for layer in slimmable_layers(model)))


def relative_costs(model: Any) -> list[float]:
    """MACs of each width relative to the full width (the last one is 1.0)."""
    widths = model_widths(model)
    full = model_macs(model, len(widths) - 1)
    if full <= 0:
        raise ModelError("relative_costs: the model's slimmable layers report no MACs")
    return [model_macs(model, i) / full for i in range(len(widths))]


class PlainApply:
    """Calls a plain Keras layer and sets its weights right after its first call (build)."""

    def __init__(self, layer: keras.layers.Layer, weights: list[Any]) -> None:
        self.layer = layer
        self._weights: list[Any] | None = weights

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call_then_set(self.layer, args, kwargs, self._set)

    def _set(self) -> None:
        if self._weights is not None:
            self.layer.set_weights(self._weights)
            self._weights = None


def call_then_set(layer: Any, args: tuple, kwargs: dict, set_weights: Any) -> Any:
    """Call ``layer`` (which builds it), then ``set_weights()``; an eager call is repeated so
    its result already uses the set weights (a symbolic one only wires the graph)."""
    out = layer(*args, **kwargs)
    set_weights()
    if not any(keras.backend.is_keras_tensor(t) for t in tf.nest.flatten(out)):
        out = layer(*args, **kwargs)
    return out
