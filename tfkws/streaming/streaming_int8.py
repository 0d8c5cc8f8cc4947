"""int8 streaming with external state: the step model and its non-streaming twin share int8 params.

Calibrating the step model on its own would give its tensors other ranges than the non-streaming
model's (it sees a few rows per step, not whole windows), so their int8 outputs would drift
apart. Instead the ranges are measured once, on the folded non-streaming model's layer outputs
over representative windows, and pinned with ``FixedFakeQuant`` after the input and every layer;
the step model is built from that graph (``to_streaming`` gives each state input its tensor's
fake-quant), so both convert with the same scale and zero point per tensor. State outputs then
carry the state inputs' params and are fed back as they are (int8 copies, no requantization).

``TflmStepper`` runs the step ``.tflite`` in TFLM, pairing state outputs with state inputs by the
model's signature names.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.fixed_fake_quant import FixedFakeQuant
from tfkws.streaming.external_state import StreamingModel, to_streaming


def pin_ranges(model: keras.Model, representative: np.ndarray) -> keras.Model:
    """``model`` (a folded chain) with a ``FixedFakeQuant`` after its input and every layer,
    ranges from its outputs on ``representative`` windows ``[N, frames, features]``."""
    layers = [x for x in model.layers if not isinstance(x, keras.layers.InputLayer)]
    probe = keras.Model(model.inputs, [x.output for x in layers])
    rep = np.asarray(representative, np.float32)
    outs = [[np.asarray(o) for o in probe(rep[i : i + 1], training=False)] for i in range(len(rep))]
    x = inp = keras.Input(model.input_shape[1:], batch_size=1, name=model.input_names[0])
    x = FixedFakeQuant(float(rep.min()), float(rep.max()), name="input_fq")(x)
    for i, layer in enumerate(layers):
        values = [o[i] for o in outs]
        low = min(float(v.min()) for v in values)
        high = max(float(v.max()) for v in values)
        x = FixedFakeQuant(low, high, name=f"{layer.name}_fq")(layer(x))
    return keras.Model(inp, x, name=f"{model.name}_pinned")


def _int8(model: keras.Model) -> bytes:
    from tfkws import quiet

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with quiet.filtered_stderr():
        return bytes(converter.convert())


@dataclasses.dataclass
class StreamingInt8:
    """The non-streaming and step int8 models (same params per tensor) and the step layout."""

    window_tflite: bytes
    step_tflite: bytes
    streaming: StreamingModel


def streaming_int8(folded: keras.Model, representative: np.ndarray) -> StreamingInt8:
    """Both int8 forms of a folded, streamable chain model (see the module doc)."""
    from tfkws.conversion.model_info import inspect_tflite, require_int8

    pinned = pin_ranges(folded, representative)
    sm = to_streaming(pinned)
    window, step = _int8(pinned), _int8(sm.model)
    for data, what in ((window, "window"), (step, "step")):
        info = inspect_tflite(data)
        require_int8(info, f"<{what} model of {folded.name}>")
        if info.float_ops:
            raise ModelError(f"{folded.name}: the {what} model keeps float op(s) {info.float_ops}")
    return StreamingInt8(window, step, sm)


class TflmStepper:
    """The step model in TFLM: ``step(int8 frames [hop, features]) -> int8 logits``; state kept
    in int8 between steps (outputs copied to the inputs of the same name)."""

    def __init__(self, step_tflite: bytes, streaming: StreamingModel) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from tfkws.verification.tflm import tflm_interpreter

        keras_model = streaming.model
        sig = Interpreter(model_content=step_tflite).get_signature_runner()
        in_details, out_details = sig.get_input_details(), sig.get_output_details()
        litert = Interpreter(model_content=step_tflite)
        in_pos = {d["index"]: i for i, d in enumerate(litert.get_input_details())}
        out_pos = {d["index"]: i for i, d in enumerate(litert.get_output_details())}
        names_in, names_out = keras_model.input_names, keras_model.output_names
        self._frames = in_pos[in_details[names_in[0]]["index"]]
        self._logits = out_pos[out_details[names_out[0]]["index"]]
        self._pairs = [
            (out_pos[out_details[o]["index"]], in_pos[in_details[i]["index"]], in_details[i])
            for i, o in zip(names_in[1:], names_out[1:], strict=True)
        ]
        self._interp, _ = tflm_interpreter(step_tflite)
        self.reset()

    def reset(self) -> None:
        self._states = [np.full(d["shape"], d["quantization"][1], np.int8) for *_, d in self._pairs]

    def step(self, frames: np.ndarray) -> np.ndarray:
        interp = self._interp
        interp.set_input(np.asarray(frames, np.int8)[None], self._frames)
        for (_, pos, _), state in zip(self._pairs, self._states, strict=True):
            interp.set_input(state, pos)
        interp.invoke()
        self._states = [np.array(interp.get_output(o), np.int8) for o, _, _ in self._pairs]
        return np.array(interp.get_output(self._logits), np.int8).reshape(-1)
