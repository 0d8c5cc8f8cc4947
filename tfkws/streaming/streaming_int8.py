"""int8 streaming with external state: the step model and its non-streaming twin share int8 params.

Calibrating the step model on its own would give its tensors other ranges than the non-streaming
model's (it sees a few rows per step, not whole windows), so their int8 outputs would drift
apart. Instead the ranges are measured once, on the folded non-streaming model's layer outputs
over representative windows, and pinned with ``FixedFakeQuant`` after the input and every layer;
the step model is built from that graph (``to_streaming`` gives each state input its tensor's
fake-quant), so both convert with the same scale and zero point per tensor. State outputs then
carry the state inputs' params and are fed back as they are (int8 copies, no requantization).

``TflmStepper`` runs the step ``.tflite`` in TFLM, pairing state outputs with state inputs by
position (``StepLayout``: found through the model's signature names, kept in an exported step
model's metadata so that firmware_gen can wire them without TensorFlow).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.fixed_fake_quant import FixedFakeQuant
from tfkws.layers.pinned_affine import PinnedAffine
from tfkws.layers.sub_spectral_norm import SubSpectralNorm
from tfkws.streaming.external_state import StreamingModel, layer_calls, to_streaming


def pin_ranges(model: keras.Model, representative: np.ndarray) -> keras.Model:
    """``model`` (folded, functional, no nested models) with a ``FixedFakeQuant`` after its input
    and every layer call, ranges from its tensors on ``representative`` windows
    ``[N, frames, features]``.

    Dropout is dropped. A crop keeps its input's params (a range of its own would put two fake
    quants in a row where the streaming form, in which the crop is a no-op, reads its input: the
    converter then gives the two sides of a state concatenation different scales). A
    SubSpectralNorm becomes the ``PinnedAffine`` it computes (its product pinned too). A
    sigmoid's output is pinned to LOGISTIC's own int8 grid (scale 1/256, zero point -128), so no
    requantization follows it."""
    nodes = [n for n in layer_calls(model) if not isinstance(n.layer, keras.layers.Dropout)]
    tensors = [model.inputs[0]] + [n.outputs for n in nodes]
    probe = keras.Model(model.inputs, tensors)
    rep = np.asarray(representative, np.float32)
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    values: dict[int, list[np.ndarray]] = {id(t): [] for t in tensors}
    for i in range(len(rep)):
        for t, v in zip(tensors, probe(rep[i : i + 1], training=False), strict=True):
            values[id(t)].append(np.asarray(v))
    for key, vs in values.items():
        low[key] = min(float(v.min()) for v in vs)
        high[key] = max(float(v.max()) for v in vs)

    def fq(t: Any, name: str) -> FixedFakeQuant:
        return FixedFakeQuant(low[id(t)], high[id(t)], name=name)

    inp = keras.Input(model.input_shape[1:], batch_size=1, name=model.input_names[0])
    new = {id(model.inputs[0]): fq(model.inputs[0], "input_fq")(inp)}
    lookup = {id(t): t for t in tensors}
    for node in layer_calls(model):
        layer, ins = node.layer, [new[id(x)] for x in node.keras_inputs]
        if isinstance(layer, keras.layers.Dropout):
            new[id(node.outputs)] = ins[0]
            continue
        if isinstance(layer, SubSpectralNorm):
            scale, offset = layer.inference_affine()
            products = [v * scale for v in values[id(node.keras_inputs[0])]]
            product = (min(float(p.min()) for p in products), max(float(p.max()) for p in products))
            layer = PinnedAffine(scale, offset, product, name=layer.name)
        y = layer(ins if len(ins) > 1 else ins[0])
        if isinstance(layer, keras.layers.Cropping2D):  # a slice keeps its input's int8 params
            new[id(node.outputs)] = y
            continue
        out = lookup[id(node.outputs)]
        if (
            isinstance(layer, keras.layers.Activation)
            and layer.activation is keras.activations.sigmoid
        ):
            pin = FixedFakeQuant(0.0, 255.0 / 256.0, name=f"{layer.name}_fq")
        else:
            pin = fq(out, f"{layer.name}_fq")
        new[id(node.outputs)] = pin(y)
    return keras.Model(inp, new[id(model.outputs[0])], name=f"{model.name}_pinned")


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
    """Both int8 forms of a folded, streamable model (see the module doc)."""
    from tfkws.conversion.model_info import inspect_tflite, require_int8

    pinned = pin_ranges(folded, representative)
    sm = to_streaming(pinned, per_row=(PinnedAffine,))
    window, step = _int8(pinned), _int8(sm.model)
    for data, what in ((window, "window"), (step, "step")):
        info = inspect_tflite(data)
        require_int8(info, f"<{what} model of {folded.name}>")
        if info.float_ops:
            raise ModelError(f"{folded.name}: the {what} model keeps float op(s) {info.float_ops}")
    return StreamingInt8(window, step, sm)


@dataclasses.dataclass(frozen=True)
class StepLayout:
    """Where a step ``.tflite``'s tensors are, by position in the flatbuffer's input and output
    lists (what TFLM's ``input(i)`` / ``output(i)`` take): the converter orders them by name, so
    the frames input and the logits output need not come first. ``states``: (input, output)
    pairs, each output fed back to its input at the next step."""

    frames_input: int
    logits_output: int
    states: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames_input": self.frames_input,
            "logits_output": self.logits_output,
            "states": [{"input": i, "output": o} for i, o in self.states],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepLayout:
        states = tuple((int(s["input"]), int(s["output"])) for s in d["states"])
        return cls(int(d["frames_input"]), int(d["logits_output"]), states)


def step_layout(step_tflite: bytes, streaming: StreamingModel) -> StepLayout:
    """The layout of the step model ``streaming.model`` converted to ``step_tflite``, matched
    through the flatbuffer's signature (Keras input and output names)."""
    from ai_edge_litert.interpreter import Interpreter

    keras_model = streaming.model
    litert = Interpreter(model_content=step_tflite)
    sig = litert.get_signature_runner()
    in_details, out_details = sig.get_input_details(), sig.get_output_details()
    in_pos = {d["index"]: i for i, d in enumerate(litert.get_input_details())}
    out_pos = {d["index"]: i for i, d in enumerate(litert.get_output_details())}
    names_in, names_out = keras_model.input_names, keras_model.output_names
    return StepLayout(
        in_pos[in_details[names_in[0]]["index"]],
        out_pos[out_details[names_out[0]]["index"]],
        tuple(
            (in_pos[in_details[i]["index"]], out_pos[out_details[o]["index"]])
            for i, o in zip(names_in[1:], names_out[1:], strict=True)
        ),
    )


class TflmStepper:
    """The step model in TFLM: ``step(int8 frames [hop, features]) -> int8 logits``; state kept
    in int8 between steps (each state output copied to its input, ``StepLayout``). ``layout``:
    a ``StepLayout`` (e.g. from an exported step model's metadata) or the ``StreamingModel``
    the ``.tflite`` was converted from."""

    def __init__(self, step_tflite: bytes, layout: StepLayout | StreamingModel) -> None:
        from tfkws.conversion.model_info import inspect_tflite
        from tfkws.verification.tflm import tflm_interpreter

        if isinstance(layout, StreamingModel):
            layout = step_layout(step_tflite, layout)
        self.layout = layout
        info = inspect_tflite(step_tflite)
        inputs = info.inputs
        self._zero = [
            np.full(inputs[i].shape, inputs[i].zero_point or 0, np.int8) for i, _ in layout.states
        ]
        self.frames_shape = inputs[layout.frames_input].shape
        self.logits_elements = int(np.prod(info.outputs[layout.logits_output].shape))
        self._interp, _ = tflm_interpreter(step_tflite)
        self.reset()

    def reset(self) -> None:
        self._states = [z.copy() for z in self._zero]

    def step(self, frames: np.ndarray) -> np.ndarray:
        interp, lay = self._interp, self.layout
        interp.set_input(np.asarray(frames, np.int8).reshape(self.frames_shape), lay.frames_input)
        for (pos, _), state in zip(lay.states, self._states, strict=True):
            interp.set_input(state, pos)
        interp.invoke()
        self._states = [np.array(interp.get_output(o), np.int8) for _, o in lay.states]
        return np.array(interp.get_output(lay.logits_output), np.int8).reshape(-1)
