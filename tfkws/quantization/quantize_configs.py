"""tfmot ``QuantizeConfig``s for the layers tfmot's default 8-bit registry does not cover.

Each config fake-quantises exactly what the int8 TFLite graph quantises, so the ranges learnt in
QAT are the ones the converter writes:

* ``StridedDepthwiseConv2D`` (and plain ``DepthwiseConv2D``): the depthwise kernel per output
  channel, like TFLite's int8 DEPTHWISE_CONV_2D (tfmot's default quantises per last kernel axis,
  which is the depth multiplier -- a single range for the usual multiplier of 1); output after
  the (linear) activation.
* ``Multiply`` (BC-ResNet's swish gate): its output (TFLite MUL has its own output range).
* ``SubSpectralNorm`` cannot be fake-quantised as it is: at inference it is ``x * s + o`` and the
  int8 MUL between the two ops needs its own range. QAT therefore replaces it with
  ``SpectralAffine`` (``tfkws.quantization.qat``), whose config quantises ``s``, ``o``, the
  product and the output: MUL + ADD with every tensor quantised as in the deployed graph.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfkws.errors import ModelError

_quantizers = tfmot.quantization.keras.quantizers
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


def _activation_quantizer() -> Any:
    """tfmot's activation quantizer: asymmetric per-tensor 8-bit, moving-average range."""
    return _quantizers.MovingAverageQuantizer(
        num_bits=8, per_axis=False, symmetric=False, narrow_range=False
    )


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

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.product_activation(inputs * self.scale) + self.offset

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
    "SpectralAffine": SpectralAffine,
}
