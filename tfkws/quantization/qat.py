"""Quantization-aware training (tfmot) on the graph that gets deployed.

``qat_model`` folds the trained float model first (BatchNorms into convs, RepConvBlocks into one
conv, Dropout dropped, SubSpectralNorm into a per-(freq, channel) affine), then wraps every layer
with tfmot fake-quant. The fake-quant ranges therefore sit on exactly the tensors the int8
TFLite graph has, and the converter takes them as they are (no representative set;
``tfkws.conversion.tflite_convert.qat_to_int8_tflite``).
LayerNorm, self-attention and the keyword transformer's class token convert to chains of int8
ops; ``tfkws.quantization.decompose`` rewrites them into one layer per op first, so each tensor
of those chains gets its own fake-quant range too (an extracted slimmable width is an ordinary
model of such layers).

The fake-quant graph also rounds as the int8 kernels do (``quantize_configs``): sigmoid on
LOGISTIC's fixed 1/256 grid, AVERAGE_POOL_2D on its input's grid, and CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, MUL and MEAN through TFLM's int32 accumulator and Q31
double-rounding requantization. tfmot's float rounding differs from those kernels by one step on
a few percent of values, enough to change BC-ResNet's predictions (its temporal path amplifies
them); the converter still reads plain FakeQuants (``converter_graph``), so the int8 file is
the same either way.

tfmot 0.8's default layout transform marks a ``Conv2D/DepthwiseConv2D/Dense`` followed by a
separate ``ReLU`` layer as "do not quantize" -- weights included -- so a folded Conv -> ReLU
would train with float kernels. Our scheme replaces that transform: the layer keeps its weight
quantizer and only its (fused-away) output fake-quant is dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantize_aware_activation,
)
from tensorflow_model_optimization.python.core.quantization.keras import (
    utils as tfmot_utils,
)
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_layout_transform,
    default_8bit_quantize_registry,
    default_8bit_quantize_scheme,
    default_8bit_transforms,
)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer,
    transforms,
)

from tfkws.errors import ModelError
from tfkws.folding.fold import fold_model, rebuild, with_batch_size
from tfkws.layers.gated_linear_unit import GatedLinearUnit
from tfkws.layers.learned_position import LearnedPosition
from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D
from tfkws.layers.sub_spectral_norm import SubSpectralNorm
from tfkws.quantization.decompose import decompose_for_qat
from tfkws.quantization.int8_layers import (
    BatchMatMul,
    ChannelAffine,
    ChannelMean,
    ClassTokenPositionQAT,
    InverseSqrt,
    MeanSquare,
    ScaleBy,
    SigmoidGate,
)
from tfkws.quantization.quantize_configs import (
    CUSTOM_CONFIGS,
    AveragePoolQuantizeConfig,
    ConvRequantizeConfig,
    DenseRequantizeConfig,
    DepthwiseConvQuantizeConfig,
    GateQuantizeConfig,
    InnerOutputQuantizeConfig,
    OutputQuantizeConfig,
    SigmoidQuantizeConfig,
    SoftmaxQuantizeConfig,
    SpectralAffine,
    SpectralAffineQuantizeConfig,
)

LayerPattern = transforms.LayerPattern
_LINEAR = "Conv2D|DepthwiseConv2D|StridedDepthwiseConv2D|Dense"

# Layer classes tfmot's default registry lacks (matched by exact class) -> their config.
_CUSTOM: dict[type, Any] = {
    StridedDepthwiseConv2D: DepthwiseConvQuantizeConfig,
    keras.layers.DepthwiseConv2D: DepthwiseConvQuantizeConfig,  # per channel, as TFLite does
    # tfmot's configs, with int8 kernels' rounding emulated on the output (RequantizeQuantizer).
    keras.layers.Conv2D: ConvRequantizeConfig,
    keras.layers.Dense: DenseRequantizeConfig,
    keras.layers.ReLU: OutputQuantizeConfig,
    keras.layers.GlobalAveragePooling1D: OutputQuantizeConfig,  # MEAN
    keras.layers.GlobalAveragePooling2D: OutputQuantizeConfig,
    keras.layers.Multiply: OutputQuantizeConfig,
    keras.layers.Subtract: OutputQuantizeConfig,
    # TFLite AVERAGE_POOL_2D keeps its input's scale: rounded on that grid, no range of its own.
    keras.layers.AveragePooling2D: AveragePoolQuantizeConfig,
    keras.layers.Softmax: SoftmaxQuantizeConfig,
    SpectralAffine: SpectralAffineQuantizeConfig,
    # Decomposed LayerNorm / attention / class token (tfkws.quantization.decompose).
    ChannelMean: lambda: InnerOutputQuantizeConfig(inner=False),
    MeanSquare: InnerOutputQuantizeConfig,
    InverseSqrt: lambda: InnerOutputQuantizeConfig(reciprocal=True),
    ChannelAffine: lambda: InnerOutputQuantizeConfig(("scale", "offset")),
    BatchMatMul: OutputQuantizeConfig,
    ClassTokenPositionQAT: lambda: InnerOutputQuantizeConfig(("pos",)),
    # The conformer's layers (decomposed where they hold several int8 ops).
    SigmoidGate: GateQuantizeConfig,
    GatedLinearUnit: GateQuantizeConfig,
    ScaleBy: OutputQuantizeConfig,
    LearnedPosition: lambda: InnerOutputQuantizeConfig(("position",), inner=False),
}
# ``Activation`` layers whose int8 op has a fixed output grid (tfmot leaves them float).
_FIXED_GRID_ACTIVATIONS: dict[str, Any] = {
    "sigmoid": SigmoidQuantizeConfig,  # LOGISTIC
    "softmax": SoftmaxQuantizeConfig,  # SOFTMAX
}


def quantize_scope() -> Any:
    """tfmot's custom-object scope plus tfkws's configs (needed to clone or copy a QAT model)."""
    return tfmot.quantization.keras.quantize_scope(dict(CUSTOM_CONFIGS))


# --------------------------------------------------------------------------- layout transforms
class _LinearReLU(transforms.Transform):
    """Conv/Dense -> ReLU: no fake-quant between them (TFLite fuses the ReLU), kernel still int8."""

    def pattern(self) -> Any:
        return LayerPattern("ReLU", inputs=[LayerPattern(_LINEAR, config={"activation": "linear"})])

    def replacement(self, match_layer: Any) -> Any:
        linear = match_layer.input_layers[0]
        linear.layer["config"]["activation"] = tfmot_utils.serialize_activation(
            quantize_aware_activation.NoOpActivation(), use_legacy_format=True
        )
        return match_layer

    def custom_objects(self) -> dict[str, Any]:
        return {"NoOpActivation": quantize_aware_activation.NoOpActivation}


class _LinearReluActivation(_LinearReLU):
    def pattern(self) -> Any:
        return LayerPattern(
            "Activation",
            config={"activation": "relu"},
            inputs=[LayerPattern(_LINEAR, config={"activation": "linear"})],
        )


class _AddReLU(default_8bit_transforms.LayerReLUQuantize):
    """Add -> ReLU as tfmot does it (Add has no weights, TFLite fuses the ReLU into ADD)."""

    def pattern(self) -> Any:
        return LayerPattern("ReLU", inputs=[LayerPattern("Add")])


class _AddReluActivation(default_8bit_transforms.LayerReLUQuantize):
    def pattern(self) -> Any:
        return LayerPattern(
            "Activation", config={"activation": "relu"}, inputs=[LayerPattern("Add")]
        )


class _LayoutTransform(default_8bit_quantize_layout_transform.Default8BitQuantizeLayoutTransform):
    def apply(self, model: keras.Model, layer_quantize_map: dict) -> Any:
        t = default_8bit_transforms
        steps = [
            t.InputLayerQuantize(),
            t.Conv2DBatchNormReLUQuantize(),
            t.Conv2DBatchNormActivationQuantize(),
            t.Conv2DBatchNormQuantize(),
            t.ConcatTransform6Inputs(),
            t.ConcatTransform5Inputs(),
            t.ConcatTransform4Inputs(),
            t.ConcatTransform3Inputs(),
            t.ConcatTransform(),
            _LinearReLU(),
            _LinearReluActivation(),
            _AddReLU(),
            _AddReluActivation(),
        ]
        return model_transformer.ModelTransformer(
            model, steps, set(layer_quantize_map.keys()), layer_quantize_map
        ).transform()


class TfkwsQuantizeScheme(default_8bit_quantize_scheme.Default8BitQuantizeScheme):
    """tfmot's default 8-bit scheme with the Conv->ReLU weight-quantization fix (module doc)."""

    def get_layout_transformer(self) -> Any:
        return _LayoutTransform()


# --------------------------------------------------------------------------- model preparation
def _ssn_to_affine(model: keras.Model) -> keras.Model:
    """Replace each SubSpectralNorm by the ``SpectralAffine`` it computes at inference."""

    def handler(node: Any, args: tuple, kwargs: dict, copy: Any) -> Any:
        layer = node.layer
        if not isinstance(layer, SubSpectralNorm):
            return None
        new = SpectralAffine(freq_axis=layer.freq_axis, name=layer.name)
        out = new(args[0] if args else kwargs["inputs"])
        new.set_weights(list(layer.inference_affine()))
        return out

    return rebuild(model, handler)


def _annotate(model: keras.Model) -> keras.Model:
    """Annotate every layer for tfmot; a layer nobody can quantize is a one-line ModelError."""
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        fresh = layer.__class__.from_config(layer.get_config())
        config_cls = _CUSTOM.get(type(layer))
        if type(layer) is keras.layers.Activation:
            config_cls = _FIXED_GRID_ACTIVATIONS.get(getattr(layer.activation, "__name__", ""))
        if config_cls is not None:
            return annotate(fresh, config_cls())
        if registry.supports(layer):
            return annotate(fresh)
        raise ModelError(
            f"layer {layer.name!r} ({type(layer).__name__}) of model {model.name!r} cannot be "
            "quantization-aware trained: tfmot has no QuantizeConfig for it "
            "(add one in tfkws/quantization/quantize_configs.py)"
        )

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ModelError(
                f"layer {layer.name!r} (nested model) of model {model.name!r} cannot be "
                "quantization-aware trained: flatten it into the outer functional model"
            )
    with quantize_scope():
        annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def _init_ranges(q: keras.Model, folded: keras.Model, x: np.ndarray, batch: int = 64) -> None:
    """Start every activation range at the folded float model's min/max on ``x``.

    tfmot starts them at [-6, 6] and moves them by 0.1 % a step, so a short fine-tune would
    clip wide tensors (log-mel features, logits) for its first thousand steps. One training-mode
    step on ``x`` first sets the weight ranges (last-value quantizers); the activation ranges are
    written after it, so they are exactly the min/max the converter's calibrator finds on ``x``.
    """
    q(np.asarray(x[:batch], np.float32), training=True)
    # A layer called in several places (shared) has one range for all its outputs.
    named = [
        (layer, k)
        for layer in folded.layers
        if not isinstance(layer, keras.layers.InputLayer)
        for k in range(len(layer._inbound_nodes))
    ]
    # Layers with an int8 tensor inside (SpectralAffine, int8_layers): its value from its input.
    inner = [(a, k) for a, k in named if hasattr(a, "qat_intermediate")]
    probe = keras.Model(
        folded.inputs,
        [a.get_output_at(k) for a, k in named] + [a.get_input_at(k) for a, k in inner],
    )
    lo: dict[str, float] = {"<input>": 0.0}
    hi: dict[str, float] = {"<input>": 0.0}

    def update(key: str, value: np.ndarray) -> None:
        lo[key] = min(lo.get(key, 0.0), float(np.min(value)))
        hi[key] = max(hi.get(key, 0.0), float(np.max(value)))

    for i in range(0, len(x), batch):
        xb = np.asarray(x[i : i + batch], np.float32)
        outs = probe(xb, training=False)
        outs = [o.numpy() for o in (outs if isinstance(outs, list) else [outs])]
        update("<input>", xb)
        for (layer, _), out in zip(named, outs[: len(named)], strict=True):
            update(layer.name, out)
        for (a, _), inp in zip(inner, outs[len(named) :], strict=True):
            update(f"{a.name}/inner", np.asarray(a.qat_intermediate(tf.constant(inp))))
    inner_names = {a.name for a, _ in inner}

    def key_for(layer_name: str, var: str) -> str | None:
        if var.startswith("quantize_layer_"):
            return "<input>"
        if var.startswith("post_activation_") and layer_name in inner_names:
            return f"{layer_name}/inner"
        if var.startswith(("output_", "post_activation_")):
            return layer_name
        return None

    for layer in q.layers:
        inner = layer.layer.name if hasattr(layer, "layer") else layer.name
        for v in layer.non_trainable_weights:
            var = v.name.split("/")[-1].split(":")[0]
            key = key_for(inner, var)
            if key is None or key not in lo or not var.endswith(("_min", "_max")):
                continue
            v.assign(np.full(v.shape, lo[key] if var.endswith("_min") else hi[key], np.float32))


def qat_model(model: keras.Model, calibration: np.ndarray | None = None) -> keras.Model:
    """Fold ``model`` (trained float) and wrap it for QAT; the input batch dim is kept as is.

    ``calibration`` (float features [N, ...]) starts the activation ranges at the float
    model's own min/max and sets the weight ranges, so the QAT model is a good int8 model
    before its first step; without it tfmot's [-6, 6] start values are kept (fine when the
    weights are loaded from a QAT checkpoint anyway).
    """
    folded = decompose_for_qat(_ssn_to_affine(fold_model(model)))
    annotated = _annotate(folded)
    with quantize_scope():
        q = tfmot.quantization.keras.quantize_apply(annotated, TfkwsQuantizeScheme())
    if calibration is not None:
        _init_ranges(q, folded, calibration)
    return q


def is_qat_model(model: keras.Model) -> bool:
    return any(
        isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2) for layer in model.layers
    )


def deployed_params(model: keras.Model) -> int:
    """Parameters of the folded model inside a QAT model (fake-quant ranges not counted)."""
    return int(
        sum(
            np.prod(w.shape)
            for layer in model.layers
            if isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2)
            for w in layer.layer.weights
        )
    )


def qat_batch_one(model: keras.Model) -> keras.Model:
    """A static-batch-1 copy of a QAT model (same weights and ranges) for conversion."""
    if all(x.shape[0] == 1 for x in model.inputs):
        return model
    with quantize_scope():
        return with_batch_size(model, 1)
