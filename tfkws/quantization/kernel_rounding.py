"""Fake-quant that rounds as TFLM's int8 kernels round, so the QAT model predicts what TFLM does.

A float fake-quant rounds each tensor exactly; the int8 kernels do not:

* AVERAGE_POOL_2D has no range of its own: its output is rounded on its *input's* grid, with
  integer rounding of the int8 sum (``InputGridQuantizer``).
* CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MUL and MEAN take an int32 accumulator (bias
  rounded to int32) through a Q31 multiplier with two roundings (``RequantizeQuantizer``).

Both act in inference only (training keeps tfmot's float rounding; gradients are the same) and,
under ``converter_graph``, emit the plain FakeQuants the TFLite converter reads, so the int8 file
is unchanged. The configs that use them are in ``tfkws.quantization.quantize_configs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.keras.utils import smart_cond
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_configs,
)

from tfkws.errors import ModelError

_quantizers = tfmot.quantization.keras.quantizers
_NoOpQuantizeConfig = default_8bit_quantize_configs.NoOpQuantizeConfig


def _output_quantizers(wrapper: keras.layers.Layer) -> list:
    return list(getattr(wrapper, "_output_quantizers", None) or [])


_EXPORT = {"active": False}


@contextlib.contextmanager
def converter_graph() -> Iterator[None]:
    """While active, ``InputGridQuantizer`` and ``RequantizeQuantizer`` emit plain FakeQuants.

    Their emulation of the int8 kernels' rounding (integer ops on the values) would otherwise
    reach the converter as extra ops; the FakeQuants carry the same ranges, so the converter
    writes the same int8 graph either way.
    """
    before = _EXPORT["active"]
    _EXPORT["active"] = True
    try:
        yield
    finally:
        _EXPORT["active"] = before


def _inbound_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    found: list[keras.layers.Layer] = []
    for node in layer._inbound_nodes:
        inbound = node.inbound_layers
        for item in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
            if all(item is not f for f in found):
                found.append(item)
    return found


def _post_activations(wrapper: keras.layers.Layer) -> list:
    """A wrapper's activations that carry their own fake-quant range (tfmot's
    ``QuantizeAwareActivation`` with a post-activation quantizer)."""
    return [a for a in wrapper._quantize_activations if hasattr(a, "_post_activation_vars")]


def _unquantized_passthrough(wrapper: keras.layers.Layer) -> bool:
    """A weightless wrapped layer that quantizes nothing (tfmot's config for Reshape, Flatten,
    ...): TFLite keeps its input's scale, so its range is its producer's."""
    return (
        not wrapper.layer.weights
        and not _output_quantizers(wrapper)
        and not _post_activations(wrapper)
    )


def output_range(layer: keras.layers.Layer) -> tuple[Any, Any] | None:
    """(min, max) of the fake-quant that gives ``layer``'s output its int8 grid, or None.

    Follows pass-through layers (no quantizer of their own: reshape, pad, pooling) back to the
    layer whose quantizer sets the range, as the converter propagates scales.
    """
    wrapper_cls = tfmot.quantization.keras.QuantizeWrapperV2
    layer_cls = quantize_layer.QuantizeLayer
    seen = 0
    while seen < 1000:
        seen += 1
        if isinstance(layer, layer_cls):
            quantizer, qvars = layer.quantizer, getattr(layer, "quantizer_vars", None)
        elif isinstance(layer, wrapper_cls) and (
            isinstance(layer.quantize_config, _NoOpQuantizeConfig)
            or any(isinstance(q, InputGridQuantizer) for q in _output_quantizers(layer))
            or _unquantized_passthrough(layer)
        ):  # output on its input's grid: no range of its own
            producers = _inbound_layers(layer)
            if len(producers) != 1:
                return None
            layer = producers[0]
            continue
        elif isinstance(layer, wrapper_cls) and getattr(layer, "_output_quantizers", None):
            quantizer = layer._output_quantizers[0]
            qvars = getattr(layer, "_output_quantizer_vars", None)
        elif isinstance(layer, wrapper_cls) and _post_activations(layer):
            act = _post_activations(layer)[-1]
            quantizer, qvars = act.quantizer, act._post_activation_vars
        else:
            return None
        if isinstance(quantizer, _quantizers.FixedQuantizer):
            return tf.constant(quantizer.init_min), tf.constant(quantizer.init_max)
        if isinstance(qvars, dict) and "min_var" in qvars and "max_var" in qvars:
            if tuple(qvars["min_var"].shape) not in ((), (1,)):
                return None  # a per-axis range is no single grid
            return qvars["min_var"], qvars["max_var"]
        return None
    return None


class InputGridQuantizer(_quantizers.Quantizer):
    """Output of a 'valid' ``AveragePooling2D`` rounded as TFLite's int8 AVERAGE_POOL_2D does.

    AVERAGE_POOL_2D keeps its input's scale and zero point and computes, on the int8 values,
    ``sum / count`` rounded half away from zero. This quantizer takes the range from the layer
    feeding the pool (``output_range``; it owns no variable) and reproduces that integer
    rounding exactly; gradients pass straight through. 'same' padding (edge windows with fewer
    elements) is rounded by a FakeQuant on the input's range.
    """

    def __init__(self, count: int = 0) -> None:
        self.count = int(count)  # elements per window; 0: unknown ('same' padding)
        self._layer: keras.layers.Layer | None = None

    def build(self, tensor_shape: Any, name: str, layer: keras.layers.Layer) -> dict[str, Any]:
        self._layer = layer
        return {}

    def __call__(self, inputs: tf.Tensor, training: Any, weights: dict, **kwargs: Any) -> Any:
        if self._layer is None or not self._layer._inbound_nodes:
            return inputs  # the symbolic call that builds the functional model
        producers = _inbound_layers(self._layer)
        grid = output_range(producers[0]) if len(producers) == 1 else None
        if grid is None:
            raise ModelError(
                f"layer {self._layer.name!r}: average pooling in QAT needs one input whose "
                "int8 range is known (a fake-quantised layer or a chain of pass-through layers)"
            )
        lo, hi = (tf.cast(v, inputs.dtype) for v in grid)
        if _EXPORT["active"] or self.count < 1:
            return tf.quantization.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8)
        # Grid of tf.quantization.fake_quant_with_min_max_vars (what the converter writes).
        scale = (hi - lo) / 255.0
        zero = tf.clip_by_value(tf.floor(0.5 - lo / scale), 0.0, 255.0)  # uint8 zero point
        level = (inputs - (-zero * scale)) / scale  # mean of the input's uint8 levels
        total = tf.round(level * self.count) - 128.0 * self.count  # int8 sum, exact
        half = float(self.count // 2)
        q = tf.sign(total) * tf.math.floordiv(tf.abs(total) + half, float(self.count))
        q = tf.clip_by_value(q, -128.0, 127.0)
        exact = (q + 128.0 - zero) * scale
        return inputs + tf.stop_gradient(exact - inputs)

    def get_config(self) -> dict[str, Any]:
        return {"count": self.count}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InputGridQuantizer) and other.count == self.count

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)


# --------------------------------------------------------------------------- int8 requantization
def _grid(lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(scale float32, int8 zero point as float32) of fake_quant_with_min_max_vars(lo, hi)."""
    lo, hi = tf.cast(lo, tf.float32), tf.cast(hi, tf.float32)
    scale = (hi - lo) / 255.0
    zero = tf.clip_by_value(tf.floor(0.5 - lo / scale), 0.0, 255.0) - 128.0
    return scale, zero


def _quantize_multiplier(real: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """TFLite's ``QuantizeMultiplier`` (float64 -> Q31 multiplier, shift), elementwise."""
    shift = tf.math.floor(tf.math.log(real) / np.log(2.0)) + 1.0
    frac = real / tf.pow(tf.constant(2.0, tf.float64), shift)
    shift = tf.where(frac >= 1.0, shift + 1.0, tf.where(frac < 0.5, shift - 1.0, shift))
    frac = real / tf.pow(tf.constant(2.0, tf.float64), shift)
    fixed = tf.sign(frac) * tf.floor(tf.abs(frac) * 2.0**31 + 0.5)
    big = fixed >= 2.0**31
    fixed = tf.where(big, fixed / 2.0, fixed)
    shift = tf.where(big, shift + 1.0, shift)
    return tf.cast(fixed, tf.int64), tf.cast(shift, tf.int64)


def _multiply_by_quantized_multiplier(x: tf.Tensor, mult: tf.Tensor, shift: tf.Tensor) -> Any:
    """TFLite/TFLM ``MultiplyByQuantizedMultiplier`` on int64 tensors (double rounding:
    SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)."""
    one = tf.constant(1, tf.int64)
    left = tf.maximum(shift, 0)
    right = tf.maximum(-shift, 0)
    ab = x * tf.bitwise.left_shift(one, left) * mult
    nudge = tf.where(ab >= 0, tf.constant(1 << 30, tf.int64), tf.constant(1 - (1 << 30), tf.int64))
    high = tf.truncatediv(ab + nudge, tf.constant(1 << 31, tf.int64))
    mask = tf.bitwise.left_shift(one, right) - 1
    remainder = tf.bitwise.bitwise_and(high, mask)
    threshold = tf.bitwise.right_shift(mask, one) + tf.cast(high < 0, tf.int64)
    return tf.bitwise.right_shift(high, right) + tf.cast(remainder > threshold, tf.int64)


def _mean_multiplier(real: tf.Tensor, count: int) -> tuple[tf.Tensor, tf.Tensor]:
    """int8 MEAN's multiplier for input/output scale ``real`` over ``count`` elements.

    TFLM quantizes ``real`` first, then folds 1/count in with an integer division
    (``reference_ops::QuantizedMeanOrSum``), which can differ by one step from quantizing
    ``real / count`` directly.
    """
    mult, shift = _quantize_multiplier(real)
    extra = tf.minimum(
        tf.minimum(tf.constant(int(count).bit_length() - 1, tf.int64), 32), 31 + shift
    )
    mult = tf.math.floordiv(tf.bitwise.left_shift(mult, extra), tf.constant(count, tf.int64))
    return mult, shift - extra


_LINEAR_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
_GLOBAL_POOLS = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)


def _kernel_scale(wrapper: keras.layers.Layer) -> tf.Tensor | None:
    """Per-channel (or per-tensor) int8 scale of a wrapped linear layer's kernel."""
    for weight, quantizer, qvars in getattr(wrapper, "_weight_vars", []):
        if hasattr(quantizer, "kernel_scale"):  # range from the kernel itself (Dense)
            return quantizer.kernel_scale(weight)
        if isinstance(qvars, dict) and "min_var" in qvars:
            lo, hi = qvars["min_var"], qvars["max_var"]
            return tf.maximum(tf.abs(lo), tf.abs(hi)) / 127.0
    return None


def _input_scales(wrapper: keras.layers.Layer) -> list[tf.Tensor] | None:
    """int8 scales of the tensors feeding ``wrapper`` (one node), in input order."""
    if len(wrapper._inbound_nodes) != 1:
        return None
    inbound = wrapper._inbound_nodes[0].inbound_layers
    scales = []
    for layer in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
        grid = output_range(layer)
        if grid is None:
            return None
        scales.append(_grid(*grid)[0])
    return scales


def _accumulator(wrapper: keras.layers.Layer, slot: str) -> tuple[Any, Any, Any] | None:
    """(unit, bias, mean) of the int32 accumulator behind a fake-quantised tensor, or None.

    ``unit`` is the real value of one accumulator step: input scale x kernel scale for
    CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, the product of the input scales for MUL (also
    SpectralAffine's MUL by its constant), input scale / pooled count for MEAN (global average
    pooling; ``mean`` is its (input scale, pooled count), None for the other ops). ``slot`` is
    "post_activation" (a layer's own activation) or "output" (a ``ReLU`` after a linear layer
    whose activation TFLite fuses, a ``Multiply``, a global pool).
    """
    wrapper_cls = tfmot.quantization.keras.QuantizeWrapperV2
    inner = getattr(wrapper, "layer", None)
    if slot == "output" and isinstance(inner, keras.layers.ReLU):
        producers = _inbound_layers(wrapper)
        if len(producers) != 1 or not isinstance(producers[0], wrapper_cls):
            return None
        linear = producers[0]
        if not isinstance(linear.layer, _LINEAR_TYPES) or _post_activations(linear):
            return None
        if inner.max_value is not None or inner.negative_slope or inner.threshold:
            return None
        wrapper, inner, slot = linear, linear.layer, "post_activation"
    if slot == "post_activation" and isinstance(inner, _LINEAR_TYPES):
        scales, kernel = _input_scales(wrapper), _kernel_scale(wrapper)
        if scales is None or kernel is None or len(scales) != 1:
            return None
        bias = inner.bias if getattr(inner, "use_bias", False) else None
        return tf.cast(scales[0], tf.float64) * tf.cast(kernel, tf.float64), bias, None
    if slot == "post_activation" and type(inner).__name__ == "SpectralAffine":
        # MUL by the per-tensor asymmetric int8 ``scale`` constant (its first weight).
        scales = _input_scales(wrapper)
        qvars = wrapper._weight_vars[0][2] if getattr(wrapper, "_weight_vars", None) else None
        if scales is None or len(scales) != 1 or not isinstance(qvars, dict):
            return None
        const = _grid(qvars["min_var"], qvars["max_var"])[0]
        return tf.cast(scales[0], tf.float64) * tf.cast(const, tf.float64), None, None
    if slot == "output" and isinstance(inner, _GLOBAL_POOLS):
        # MEAN: accumulator = sum of (q - zero) over the pooled axes; one step = in_scale / n.
        scales = _input_scales(wrapper)
        shape = wrapper.input_shape
        if (
            scales is None
            or len(scales) != 1
            or getattr(inner, "data_format", "") != ("channels_last")
        ):
            return None
        count = int(np.prod(shape[1:-1])) if None not in shape[1:-1] else 0
        if count < 1:
            return None
        in_scale = tf.cast(scales[0], tf.float64)
        return in_scale / float(count), None, (in_scale, count)
    if slot == "output" and isinstance(inner, keras.layers.Multiply):
        scales = _input_scales(wrapper)
        if scales is None or len(scales) != 2:
            return None
        return tf.cast(scales[0], tf.float64) * tf.cast(scales[1], tf.float64), None, None
    return None


class RequantizeQuantizer(_quantizers.MovingAverageQuantizer):
    """tfmot's moving-average activation quantizer, rounding as TFLite's int8 kernels round.

    A float fake-quant rounds ``acc * in_scale * w_scale / out_scale`` exactly; int8 CONV_2D,
    DEPTHWISE_CONV_2D, FULLY_CONNECTED and MUL instead take the int32 accumulator (bias rounded
    to int32 too) through a Q31 multiplier with two roundings (``MultiplyByQuantizedMultiplier``),
    which is off by up to 2^-(shift+1) LSB and flips a few percent of outputs by one step. In a
    high-gain graph (BC-ResNet's temporal path: sigmoid, swish, broadcast over frequency) those
    flips grow into different predictions. Where the tensor is such an op's output (see
    ``_accumulator``), this quantizer reproduces the integer result exactly (same range
    variables, straight-through gradient); elsewhere it is the plain moving-average quantizer.
    Under ``converter_graph`` it emits the plain FakeQuant the converter reads.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
        self._layer: keras.layers.Layer | None = None
        self._slot = ""

    def build(self, tensor_shape: Any, name: str, layer: keras.layers.Layer) -> dict[str, Any]:
        self._layer, self._slot = layer, name
        return super().build(tensor_shape, name, layer)

    def __call__(self, inputs: tf.Tensor, training: Any, weights: dict, **kwargs: Any) -> Any:
        out = super().__call__(inputs, training, weights, **kwargs)
        if _EXPORT["active"] or self._layer is None or not self._layer._inbound_nodes:
            return out
        acc = _accumulator(self._layer, self._slot)
        if acc is None:
            return out
        # Inference only: training keeps tfmot's cheaper float rounding (gradients are the same).
        return smart_cond(training, lambda: out, lambda: self._integer(inputs, out, acc, weights))

    @staticmethod
    def _integer(inputs: tf.Tensor, out: tf.Tensor, acc: tuple, weights: dict) -> tf.Tensor:
        unit, bias, mean = acc
        scale, zero = _grid(weights["min_var"], weights["max_var"])
        value = tf.cast(inputs, tf.float64)
        if bias is None:
            total = tf.round(value / unit)
        else:  # int32 bias as the converter rounds it, accumulator exact
            b = tf.cast(bias, tf.float64)
            total = tf.round((value - b) / unit) + tf.sign(b / unit) * tf.floor(
                tf.abs(b / unit) + 0.5
            )
        if mean is not None:  # TFLM's multiplier is in_scale / out_scale, then 1/count
            in_scale, count = mean
            mult, shift = _mean_multiplier(in_scale / tf.cast(scale, tf.float64), count)
        else:
            mult, shift = _quantize_multiplier(unit / tf.cast(scale, tf.float64))
        q = _multiply_by_quantized_multiplier(tf.cast(total, tf.int64), mult, shift)
        q = tf.clip_by_value(tf.cast(q, tf.float32) + zero, -128.0, 127.0)
        exact = (q - zero) * scale
        return out + tf.stop_gradient(tf.cast(exact, out.dtype) - out)

    def get_config(self) -> dict[str, Any]:
        return {}
