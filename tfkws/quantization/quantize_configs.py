"""tfmot ``QuantizeConfig``s for the layers tfmot's default 8-bit registry does not cover.

Each config fake-quantises exactly what the int8 TFLite graph quantises, so the ranges learnt in
QAT are the ones the converter writes:

* ``StridedDepthwiseConv2D`` (and plain ``DepthwiseConv2D``): the depthwise kernel per output
  channel, like TFLite's int8 DEPTHWISE_CONV_2D (tfmot's default quantises per last kernel axis,
  which is the depth multiplier -- a single range for the usual multiplier of 1); output after
  the (linear) activation.
* ``Dense``: the kernel per output channel (``DenseKernelQuantizer``), as PTQ writes
  FULLY_CONNECTED weights, so a QAT model calibrated on PTQ's clips converts to the PTQ model.
* ``Multiply`` (BC-ResNet's swish gate): its output (TFLite MUL has its own output range).
* ``SubSpectralNorm`` cannot be fake-quantised as it is: at inference it is ``x * s + o`` and the
  int8 MUL between the two ops needs its own range. QAT therefore replaces it with
  ``SpectralAffine`` (``tfkws.quantization.qat``), whose config quantises ``s``, ``o``, the
  product and the output: MUL + ADD with every tensor quantised as in the deployed graph.
* The op-level layers of ``tfkws.quantization.int8_layers`` (LayerNorm, attention and class
  token decomposed for QAT): ``InnerOutputQuantizeConfig`` quantises the constants they name,
  their ``inner_activation`` (the int8 tensor between their two ops) and their output.
* ``Softmax``, and ``Activation`` layers of ``sigmoid`` (BC-ResNet's swish gate) or ``softmax``:
  their output on TFLite's fixed int8 grid of SOFTMAX / LOGISTIC (scale 1/256, zero point -128);
  tfmot's default leaves them float, so the Keras model would not see that rounding.
* ``SigmoidGate`` (swish) and the conformer's ``GatedLinearUnit``: the sigmoid on LOGISTIC's
  fixed grid inside the layer, the MUL's output range (``GateQuantizeConfig``).
* ``AveragePooling2D`` (BC-ResNet's frequency average) and every linear layer's, ``Multiply``'s
  or global pool's output: quantizers of ``tfkws.quantization.kernel_rounding`` that round as
  AVERAGE_POOL_2D (on its input's grid) and CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / MUL /
  MEAN (int32 accumulator, Q31 requantization) do; same range variables as tfmot's quantizer,
  so checkpoints of earlier QAT runs load unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.keras.utils import smart_cond
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_registry,
)

from tfkws.errors import ModelError
from tfkws.quantization.kernel_rounding import InputGridQuantizer, RequantizeQuantizer

_quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


def _activation_quantizer() -> Any:
    """tfmot's activation quantizer (asymmetric per-tensor 8-bit, moving-average range) that
    also rounds as the int8 kernel does where it can (``RequantizeQuantizer``)."""
    return RequantizeQuantizer()


class DepthwiseKernelQuantizer(_quantizers.LastValueQuantizer):
    """Per-output-channel symmetric int8 for a depthwise kernel ``[kh, kw, cin, mult]``.

    TFLite stores the kernel as ``[1, kh, kw, cin * mult]`` and quantises it per last axis, so
    the range variables have one entry per ``cin * mult`` channel.
    """

    def __init__(self) -> None:
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape: Any, name: str, layer: keras.layers.Layer) -> dict[str, Any]:
        channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
        init = {"-6": keras.initializers.Constant(-6.0), "6": keras.initializers.Constant(6.0)}
        return {
            "min_var": layer.add_weight(
                name + "_min", shape=(channels,), initializer=init["-6"], trainable=False
            ),
            "max_var": layer.add_weight(
                name + "_max", shape=(channels,), initializer=init["6"], trainable=False
            ),
        }

    def __call__(self, inputs: tf.Tensor, training: Any, weights: dict, **kwargs: Any) -> Any:
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [shape[0], shape[1], 1, shape[2] * shape[3]])
        out = super().__call__(flat, training, weights, **kwargs)
        return tf.reshape(out, shape)

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DepthwiseKernelQuantizer:
        return cls()


class DepthwiseConvQuantizeConfig(QuantizeConfig):
    """``depthwise_kernel`` per channel, output after the activation (see module doc)."""

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(layer.depthwise_kernel, DepthwiseKernelQuantizer())]

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(layer.activation, _activation_quantizer())]

    def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
        (layer.depthwise_kernel,) = quantize_weights

    def set_quantize_activations(
        self, layer: keras.layers.Layer, quantize_activations: list
    ) -> None:
        (layer.activation,) = quantize_activations

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def get_config(self) -> dict[str, Any]:
        return {}


class OutputQuantizeConfig(QuantizeConfig):
    """No weights; only the output is fake-quantised (elementwise ops such as ``Multiply``)."""

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list:
        return []

    def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
        pass

    def set_quantize_activations(
        self, layer: keras.layers.Layer, quantize_activations: list
    ) -> None:
        pass

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        return [_activation_quantizer()]

    def get_config(self) -> dict[str, Any]:
        return {}


class SpectralAffineQuantizeConfig(QuantizeConfig):
    """``SpectralAffine``: int8 scale and offset constants, the MUL result and the ADD output.

    The constants are quantised per tensor (TFLite MUL/ADD take per-tensor int8 operands).
    """

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        const = _quantizers.LastValueQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False
        )
        return [(layer.scale, const), (layer.offset, const)]

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(layer.product_activation, _activation_quantizer())]

    def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
        layer.scale, layer.offset = quantize_weights

    def set_quantize_activations(
        self, layer: keras.layers.Layer, quantize_activations: list
    ) -> None:
        (layer.product_activation,) = quantize_activations

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        return [_activation_quantizer()]

    def get_config(self) -> dict[str, Any]:
        return {}


def _constant_quantizer() -> Any:
    """Per-tensor asymmetric int8 for a constant operand of MUL / ADD (as TFLite stores it)."""
    return _quantizers.LastValueQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


class ReciprocalOutputQuantizer(_quantizers.MovingAverageQuantizer):
    """Activation quantizer for ``InverseSqrt``: in training, +inf (RSQRT of an int8 zero)
    becomes the range's max before the moving-average update, as int8 RSQRT outputs its largest
    value; the range is not dragged to infinity."""

    def __call__(self, inputs: tf.Tensor, training: Any, weights: dict, **kwargs: Any) -> Any:
        def clamp() -> tf.Tensor:
            top = tf.broadcast_to(tf.cast(weights["max_var"], inputs.dtype), tf.shape(inputs))
            return tf.where(tf.math.is_finite(inputs), inputs, top)

        inputs = smart_cond(training, clamp, lambda: inputs)
        return super().__call__(inputs, training, weights, **kwargs)


class InnerOutputQuantizeConfig(QuantizeConfig):
    """Constants ``weights`` (attribute names), the ``inner_activation`` if any, the output.

    For the two-op layers of ``tfkws.quantization.int8_layers``: each of their int8 tensors.
    """

    def __init__(
        self,
        weights: tuple[str, ...] | list[str] = (),
        inner: bool = True,
        reciprocal: bool = False,
    ) -> None:
        self.weights = tuple(weights)
        self.inner = bool(inner)
        self.reciprocal = bool(reciprocal)  # output may be +inf: ReciprocalOutputQuantizer

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(getattr(layer, w), _constant_quantizer()) for w in self.weights]

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(layer.inner_activation, _activation_quantizer())] if self.inner else []

    def set_quantize_weights(self, layer: keras.layers.Layer, quantize_weights: list) -> None:
        for name, value in zip(self.weights, quantize_weights, strict=True):
            setattr(layer, name, value)

    def set_quantize_activations(
        self, layer: keras.layers.Layer, quantize_activations: list
    ) -> None:
        if self.inner:
            (layer.inner_activation,) = quantize_activations

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        if self.reciprocal:
            return [
                ReciprocalOutputQuantizer(
                    num_bits=8, per_axis=False, symmetric=False, narrow_range=False
                )
            ]
        return [_activation_quantizer()]

    def get_config(self) -> dict[str, Any]:
        return {"weights": list(self.weights), "inner": self.inner, "reciprocal": self.reciprocal}


class SoftmaxQuantizeConfig(OutputQuantizeConfig):
    """Softmax output fake-quantised on [0, 255/256] in 8 bits: scale 1/256, int8 zero -128,
    the fixed output grid of TFLite's int8 SOFTMAX."""

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        return [_quantizers.FixedQuantizer(8, 0.0, 255.0 / 256.0, narrow_range=False)]


class SigmoidQuantizeConfig(SoftmaxQuantizeConfig):
    """``Activation('sigmoid')``: output on int8 LOGISTIC's fixed grid (scale 1/256, zero -128)."""


class GateQuantizeConfig(OutputQuantizeConfig):
    """A sigmoid-gated product (``SigmoidGate``, ``GatedLinearUnit``: LOGISTIC, then MUL): the
    sigmoid on LOGISTIC's fixed int8 grid (its ``gate_activation``), the MUL's output range."""

    def get_activations_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [
            (
                layer.gate_activation,
                _quantizers.FixedQuantizer(8, 0.0, 255.0 / 256.0, narrow_range=False),
            )
        ]

    def set_quantize_activations(
        self, layer: keras.layers.Layer, quantize_activations: list
    ) -> None:
        (layer.gate_activation,) = quantize_activations


class _RequantizeOutput:
    """Mixin: a tfmot weight config whose output quantizer is ``RequantizeQuantizer``."""

    def __init__(
        self,
        weight_attrs: Any = ("kernel",),
        activation_attrs: Any = ("activation",),
        quantize_output: bool = False,
    ) -> None:
        super().__init__(list(weight_attrs), list(activation_attrs), quantize_output)
        self.activation_quantizer = RequantizeQuantizer()


class ConvRequantizeConfig(
    _RequantizeOutput, default_8bit_quantize_registry.Default8BitConvQuantizeConfig
):
    """tfmot's Conv2D config (per-channel kernel) with ``RequantizeQuantizer`` on the output."""


class DenseKernelQuantizer(_quantizers.Quantizer):
    """Per-output-channel symmetric int8 for a Dense kernel ``[in, out]``, as PTQ stores
    FULLY_CONNECTED weights.

    tfmot's per-axis quantizer emits ``FakeQuantWithMinMaxVarsPerChannel``, which the converter
    refuses on a MatMul kernel ("'tfl.transpose' op has mismatched quantized axes"): it must
    transpose the kernel to FULLY_CONNECTED's ``[out, in]``. ``QuantizeAndDequantizeV2`` per last
    axis converts to exactly the per-channel FULLY_CONNECTED weights. The range is the kernel's
    own max |w| per channel at every call, as the converter computes it, so there is no range
    variable (and nothing stale after the last step).
    """

    def build(self, tensor_shape: Any, name: str, layer: keras.layers.Layer) -> dict[str, Any]:
        return {}

    def __call__(self, inputs: tf.Tensor, training: Any, weights: dict, **kwargs: Any) -> Any:
        channels = int(inputs.shape[-1])
        unused = tf.zeros([channels], inputs.dtype)  # range_given=False: computed per channel
        return tf.quantization.quantize_and_dequantize_v2(
            inputs,
            unused,
            unused,
            signed_input=True,
            num_bits=8,
            range_given=False,
            narrow_range=True,
            axis=len(inputs.shape) - 1,
        )

    @staticmethod
    def kernel_scale(kernel: tf.Tensor) -> tf.Tensor:
        """The int8 scale per output channel (what ``RequantizeQuantizer`` needs)."""
        axes = list(range(len(kernel.shape) - 1))
        return tf.reduce_max(tf.abs(kernel), axis=axes) / 127.0

    def get_config(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DenseKernelQuantizer)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)


class DenseRequantizeConfig(
    _RequantizeOutput, default_8bit_quantize_registry.Default8BitQuantizeConfig
):
    """tfmot's Dense config with the kernel per output channel (``DenseKernelQuantizer``, as PTQ
    writes FULLY_CONNECTED) and ``RequantizeQuantizer`` on the output."""

    def get_weights_and_quantizers(self, layer: keras.layers.Layer) -> list[tuple[Any, Any]]:
        return [(layer.kernel, DenseKernelQuantizer())]


class AveragePoolQuantizeConfig(OutputQuantizeConfig):
    """``AveragePooling2D``: output rounded on its input's int8 grid (``InputGridQuantizer``)."""

    def get_output_quantizers(self, layer: keras.layers.Layer) -> list:
        valid = getattr(layer, "padding", "valid") == "valid"
        count = int(np.prod(layer.pool_size)) if valid else 0
        return [InputGridQuantizer(count)]


@keras.utils.register_keras_serializable(package="tfkws")
class SpectralAffine(keras.layers.Layer):
    """Inference form of ``SubSpectralNorm`` for QAT: ``x * scale + offset`` per (freq, channel).

    Built from a trained SSN (its statistics folded in, like BatchNorms folded into convs
    before QAT), so fine-tuning trains the deployed affine map directly. Scale and offset are
    held at full (freq, channels) resolution: the deployed MUL/ADD constants have that shape, and
    their fake-quant must act on the constants themselves.
    """

    def __init__(self, freq_axis: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if freq_axis not in (1, 2):
            raise ModelError(f"SpectralAffine: freq_axis must be 1 or 2, got {freq_axis}")
        self.freq_axis = int(freq_axis)
        self.product_activation = keras.activations.get("linear")

    def build(self, input_shape: Any) -> None:
        input_shape = tf.TensorShape(input_shape)
        freq, ch = input_shape[self.freq_axis], input_shape[-1]
        shape = (int(freq), int(ch)) if self.freq_axis == 2 else (int(freq), 1, int(ch))
        self.scale = self.add_weight("scale", shape, initializer="ones")
        self.offset = self.add_weight("offset", shape, initializer="zeros")
        super().build(input_shape)

    def qat_intermediate(self, inputs: tf.Tensor) -> tf.Tensor:
        """The MUL result (the tensor ``product_activation`` fake-quantises)."""
        return inputs * self.scale

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.product_activation(self.qat_intermediate(inputs)) + self.offset

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(freq_axis=self.freq_axis)
        return config


CUSTOM_CONFIGS: dict[str, type] = {
    "DepthwiseKernelQuantizer": DepthwiseKernelQuantizer,
    "DepthwiseConvQuantizeConfig": DepthwiseConvQuantizeConfig,
    "OutputQuantizeConfig": OutputQuantizeConfig,
    "SpectralAffineQuantizeConfig": SpectralAffineQuantizeConfig,
    "InnerOutputQuantizeConfig": InnerOutputQuantizeConfig,
    "SoftmaxQuantizeConfig": SoftmaxQuantizeConfig,
    "SigmoidQuantizeConfig": SigmoidQuantizeConfig,
    "GateQuantizeConfig": GateQuantizeConfig,
    "AveragePoolQuantizeConfig": AveragePoolQuantizeConfig,
    "InputGridQuantizer": InputGridQuantizer,
    "RequantizeQuantizer": RequantizeQuantizer,
    "ConvRequantizeConfig": ConvRequantizeConfig,
    "DenseRequantizeConfig": DenseRequantizeConfig,
    "DenseKernelQuantizer": DenseKernelQuantizer,
    "SpectralAffine": SpectralAffine,
}
