"""A streaming step model (external state), as tfkws export's metadata describes it.

``tfkws export --streaming`` writes ``X_step.tflite`` whose metadata has a ``streaming`` object
with ``form`` ``external_state``: each step, ``frames_per_step`` new int8 feature frames go to
input ``frames_input``, every state output ``states[i].output`` is fed back to input
``states[i].input`` (int8 copies: each pair has the same shape and int8 params; zero-point
filled before the first step), and output ``logits_output`` holds the logits. Steps from
``warmup_steps`` on have seen a whole window; step ``k``'s window ends (exclusive) at frame
``(k + 1) * frames_per_step + end_offset``. Positions index the flatbuffer's input and output
lists (TFLM's ``input(i)`` / ``output(i)``): the converter orders them by name, so the frames
and logits need not come first.

``step_model`` reads and checks those facts against the flatbuffer (no TensorFlow needed).
"""

from __future__ import annotations

import dataclasses
import math

from firmware_gen.errors import FirmwareGenError
from firmware_gen.model import ModelInfo

FORM = "external_state"


@dataclasses.dataclass(frozen=True)
class StepModel:
    frames_input: int
    logits_output: int
    states: tuple[tuple[int, int], ...]  # (input, output) positions
    frames_per_step: int
    warmup_steps: int
    end_offset: int
    state_bytes: tuple[int, ...]
    state_zero_points: tuple[int, ...]

    @property
    def total_state_bytes(self) -> int:
        return sum(self.state_bytes)


def logits_output(meta: dict | None) -> int:
    """Position of the logits among the outputs: 0 unless the metadata says otherwise."""
    s = (meta or {}).get("streaming")
    if isinstance(s, dict) and s.get("form") == FORM and isinstance(s.get("logits_output"), int):
        return s["logits_output"]
    return 0


def step_model(info: ModelInfo, meta: dict | None, source: str) -> StepModel | None:
    """The step model's facts (None for any other model); a one-line FirmwareGenError when
    the metadata does not fit the flatbuffer."""
    s = (meta or {}).get("streaming")
    if not isinstance(s, dict) or s.get("form") != FORM:
        return None
    try:
        states = tuple((int(x["input"]), int(x["output"])) for x in s["states"])
        facts = [int(s[k]) for k in ("frames_input", "logits_output", "frames_per_step")]
        warmup, offset = int(s["warmup_steps"]), int(s["end_offset"])
    except (KeyError, TypeError, ValueError) as e:
        raise FirmwareGenError(
            f"{source}: step model metadata lacks streaming fields ({e})"
        ) from None
    frames_input, logits, hop = facts
    ins, outs = info.input_tensors, info.output_tensors
    used_in = sorted([frames_input, *(i for i, _ in states)])
    used_out = sorted([logits, *(o for _, o in states)])
    if used_in != list(range(len(ins))) or used_out != list(range(len(outs))):
        raise FirmwareGenError(
            f"{source}: the streaming metadata does not pair the model's {len(ins)} inputs and "
            f"{len(outs)} outputs (frames, logits and one input/output per state)"
        )
    if not states:
        raise FirmwareGenError(f"{source}: a step model without state tensors")
    if hop < 1 or warmup < 0:
        raise FirmwareGenError(f"{source}: frames_per_step must be >= 1 and warmup_steps >= 0")
    for i, o in states:
        a, b = ins[i], outs[o]
        if (a.dtype, a.shape, a.scale, a.zero_point) != (b.dtype, b.shape, b.scale, b.zero_point):
            raise FirmwareGenError(
                f"{source}: state output {b.name!r} cannot be fed back to input {a.name!r} as "
                "it is (different shape, type or int8 params)"
            )
        if a.dtype != "INT8" or len(a.zero_point) != 1:
            raise FirmwareGenError(f"{source}: state {a.name!r} is not per-tensor int8")
    return StepModel(
        frames_input=frames_input,
        logits_output=logits,
        states=states,
        frames_per_step=hop,
        warmup_steps=warmup,
        end_offset=offset,
        state_bytes=tuple(math.prod(ins[i].shape) for i, _ in states),
        state_zero_points=tuple(int(ins[i].zero_point[0]) for i, _ in states),
    )
