"""Keras -> .tflite: full-integer int8 (what TFLM runs; PTQ-calibrated or a QAT model's own
ranges) and float (for debugging).

Both convert a static-batch-1 graph: with a dynamic batch the converter emits shape arithmetic
(SHAPE, REDUCE_PROD, ...) that TFLM cannot run.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
import tf_keras as keras

from firmware_gen.model import FLOAT_IO_OPS
from tfkws import quiet
from tfkws.conversion.dedup_buffers import dedup_buffers
from tfkws.conversion.model_info import inspect_tflite, require_int8
from tfkws.conversion.repeat_loop import RepeatLoops
from tfkws.errors import ModelError
from tfkws.folding.fold import with_batch_size
from tfkws.quantization.kernel_rounding import converter_graph
from tfkws.quantization.ptq import PTQ_CLIPS, calibration_set, representative_dataset
from tfkws.quantization.qat import is_qat_model, qat_batch_one


def static_batch_one(model: keras.Model) -> keras.Model:
    """``model`` itself if every input has batch 1, else a weight-sharing-free batch-1 copy."""
    if all(x.shape[0] == 1 for x in model.inputs):
        return model
    return with_batch_size(model, 1)


def graph_converter(export: keras.Model) -> tf.lite.TFLiteConverter:
    """A converter over ``export``'s inference graph as one concrete function, variables frozen.

    Not ``from_keras_model``: that first writes a Keras SavedModel, tracing every layer's call
    functions, which took 39 s of a 12-block QAT BC-ResNet's 47 s conversion; this gives the same
    int8 graph (same ops, identical outputs; a layer called several times is still stored once).
    """
    spec = [tf.TensorSpec(x.shape, x.dtype) for x in export.inputs]

    def infer(*xs: tf.Tensor) -> tf.Tensor:
        return export(list(xs) if len(xs) > 1 else xs[0], training=False)

    concrete = tf.function(infer).get_concrete_function(*spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete])


def has_shared_weights(model: keras.Model) -> bool:
    """True if a layer with weights is applied more than once (nested models included)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
            if has_shared_weights(layer):
                return True
        elif isinstance(layer, RepeatLoops):  # the looped model's layers, called once per loop
            if has_shared_weights(layer.model):
                return True
        elif layer.weights and len(layer._inbound_nodes) > 1:
            return True
    return False


def _store_shared_once(model: keras.Model, data: bytes) -> bytes:
    """Weight-shared models: identical constant buffers stored once (``dedup_buffers``); other
    models' bytes are left exactly as the converter wrote them."""
    return dedup_buffers(data) if has_shared_weights(model) else data


def layers_named(names: list[str]) -> list[str]:
    """Keras layer names inside TF op/tensor names such as ``model/my_layer/Sin``: error
    messages name the layer a user can change, not the converter's tensor."""
    found = []
    for name in names:
        parts = name.split(";")[0].split("/")
        if len(parts) >= 3:
            found.append(parts[1])
    return sorted(set(found))


def _converter_error(model: keras.Model, err: Exception) -> ModelError:
    msg = str(err)
    ops = sorted(set(re.findall(r"'tfl?\.([A-Za-z0-9_]+)' op", msg)))
    ops += sorted(set(re.findall(r"TF Select ops: ([A-Za-z0-9_, ]+)", msg)) - set(ops))
    layers = layers_named(re.findall(r'"([^"@]+)@', msg))
    what = f"op(s) {', '.join(ops)}" if ops else "an op"
    if layers:
        what += f" in layer(s) {', '.join(layers)}"
    return ModelError(
        f"model {model.name!r} cannot be converted to int8 TFLite: {what} has no TFLite "
        "builtin int8 kernel"
    )


def to_int8_tflite(
    model: keras.Model,
    representative: np.ndarray,
    num_calibration: int | None = PTQ_CLIPS,
    seed: int = 0,
    per_channel_dense: bool = True,
) -> bytes:
    """Full-integer PTQ: int8 weights/activations, int8 input and output, int8 builtin ops only.

    ``representative`` [N, frames, features] float features; ``num_calibration`` clips are
    drawn from it with ``seed``. Same model + data + seed -> same bytes. ``per_channel_dense``
    False: FULLY_CONNECTED weights get one scale per tensor (the converter's default is one per
    output channel, 8-12 bytes of quantisation parameters a channel for weights and bias).
    """
    export = static_batch_one(model)
    clips = calibration_set(representative, num_calibration, seed)
    expected = tuple(int(d) for d in export.inputs[0].shape[1:])
    if tuple(clips.shape[1:]) != expected:
        raise ModelError(
            f"representative data has clips of shape {tuple(clips.shape[1:])}, "
            f"model {model.name!r} expects {expected}"
        )
    converter = graph_converter(export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(clips)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    if not per_channel_dense:  # tf.lite's own switch (no public name in TF 2.21)
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    try:
        with quiet.filtered_stderr():  # the converter's own printf lines
            data = bytes(converter.convert())
    except Exception as err:  # ConverterError, or a RuntimeError from the calibrator
        raise _converter_error(model, err) from err
    data = _store_shared_once(export, data)
    info = inspect_tflite(data)
    require_int8(info, f"<int8 export of {model.name}>")
    # QUANTIZE / DEQUANTIZE around int8 compute are fine (a repeat loop's float carried state);
    # a float op that computes is not.
    ops = [op for op in info.float_ops if op not in FLOAT_IO_OPS]
    if ops:
        layers = layers_named(list(info.float_tensors))
        raise ModelError(
            f"model {model.name!r} cannot be fully int8-quantised: op(s) "
            f"{', '.join(ops)}"
            + (f" in layer(s) {', '.join(layers)}" if layers else "")
            + " have no int8 kernel and stay float"
        )
    return data


def qat_to_int8_tflite(model: keras.Model) -> bytes:
    """QAT Keras model -> full-integer .tflite: int8 I/O, int8 builtin ops, batch 1.

    Every range comes from the model's fake-quant nodes; a tensor left without one would stay
    float, which is reported as a ModelError naming the ops.
    """
    if not is_qat_model(model):
        raise ModelError(f"model {model.name!r} is not a QAT model (build it with qat_model)")
    bad = sorted(  # the converter crashes on NaN ranges instead of reporting them
        {
            layer.name
            for layer in model.layers
            for w in layer.weights
            if w.dtype.is_floating and not np.all(np.isfinite(w.numpy()))
        }
    )
    if bad:
        raise ModelError(
            f"QAT model {model.name!r} has non-finite weights or int8 ranges in layer(s) "
            f"{', '.join(bad)} (training diverged: lower the learning rate)"
        )
    export = qat_batch_one(model)
    try:
        # plain FakeQuants, not the integer-rounding emulation; without the converter's printf
        with converter_graph(), quiet.filtered_stderr():
            converter = graph_converter(export)  # traced here, inside converter_graph()
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # No TFLITE_BUILTINS_INT8: with it, tf 2.21's converter demands a representative
            # set before it has looked for fake-quant ops. Pure int8 is checked on the result.
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            data = bytes(converter.convert())
    except Exception as err:  # ConverterError and friends
        first = next((ln for ln in str(err).splitlines() if "error:" in ln), str(err))
        first = first.split("error:", 1)[-1].strip()[:300]
        raise ModelError(
            f"QAT model {model.name!r} cannot be converted to int8 TFLite: {first}"
        ) from err
    data = _store_shared_once(export, data)
    info = inspect_tflite(data)
    require_int8(info, f"<QAT int8 export of {model.name}>")
    if info.float_ops or info.custom_ops:
        layers = layers_named(list(info.float_tensors))
        raise ModelError(
            f"QAT model {model.name!r} did not convert to pure int8: op(s) "
            f"{', '.join(info.float_ops or info.custom_ops)}"
            + (f" in layer(s) {', '.join(layers)}" if layers else "")
            + " stay float (a tensor without a fake-quant range)"
        )
    return data


def to_float_tflite(model: keras.Model) -> bytes:
    """Float32 .tflite of the batch-1 graph (debugging; TFLM targets want ``to_int8_tflite``)."""
    export = static_batch_one(model)
    converter = graph_converter(export)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with quiet.filtered_stderr():
            return bytes(converter.convert())
    except Exception as err:
        raise ModelError(f"model {model.name!r} cannot be converted to TFLite: {err}") from err
