"""The whole streaming pipeline on the device: audio -> micro frontend -> model -> detections.

``NAME_stream_main.cc`` (written with ``--detector`` for a model whose tfkws metadata has
micro frontend features) is a minimal keyword spotter: TFLM's micro frontend C library turns
each 20 ms of int16 audio into a uint16 frame, a table turns it into the model's int8 input, a
ring keeps the last ``N`` frames, the unchanged model is invoked on the whole ring every ``hop``
frames (the sliding window: works for every model) and ``NAME_detector.h`` turns its outputs
into detections. The same steps as ``tfkws detect`` (``tfkws.streaming.detect_audio``):

- frames: ``FrontendProcessSamples`` over the stream from power-on with one state, which is
  what the ``audio_microfrontend`` op tfkws computes stream features with does;
- features to int8: tfkws quantizes ``raw * output_scale`` (float32) as TFLite's QUANTIZE does
  (float32 divide, round half away from zero, add the zero point, clip). That map from the 65536
  raw values is non-decreasing, so it is written as its 255 steps (``kQuantEdges``: the first
  raw value reaching each int8 level), computed here in float32 exactly as tfkws does, and the
  device counts the steps at or below a raw value (a binary search, no floating point);
- Invokes at the window's last frames ``N - 1 + k * hop``; the detector steps once per Invoke.

For a streaming step model (``tfkws export --streaming``, ``firmware_gen.step_model``) the ring
holds one step's new frames instead: every ``frames_per_step`` frames they and the model's state
(kept outside the arena, zero-point filled at the start) are copied into its inputs, it is
invoked, its state outputs are copied back, and from the first whole-window step on the detector
steps on its logits, as ``tfkws detect`` does with that model (``tfkws.streaming.step_stream``).

``run_stream`` builds that very file (with ``FIRMWARE_GEN_NO_MAIN``) into a QEMU harness
(``harness/stream_main.cc``) with TFLM and the micro frontend library, feeds a WAV through
semihosting one stride of samples per step, and reports the detections (label, time, score as
``tfkws detect`` writes them), the instructions of every step, the RAM beside the arena and the
real-time share of each target's clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from firmware_gen.codegen import c_identifier, comment_safe
from firmware_gen.cpus import Cpu
from firmware_gen.detector import DEFAULT_HOP_FRAMES
from firmware_gen.errors import FirmwareGenError
from firmware_gen.model import ModelInfo
from firmware_gen.step_model import StepModel

LEVELS = 255  # int8 steps: levels -127..127 each have a first raw value
RUN_TIMEOUT_S = 1800.0
MAX_DETECTIONS_PER_STEP = 8
MAX_STEPS = 100_000  # the instruction-count plugin keeps this many counts (MAX_INVOKES)
# frontend settings -> (FrontendConfig field, C type); sample_rate goes to FrontendPopulateState
FRONTEND_FIELDS = {
    "window_size_ms": ("window.size_ms", "size_t"),
    "window_stride_ms": ("window.step_size_ms", "size_t"),
    "num_channels": ("filterbank.num_channels", "int"),
    "upper_band_limit": ("filterbank.upper_band_limit", "float"),
    "lower_band_limit": ("filterbank.lower_band_limit", "float"),
    "smoothing_bits": ("noise_reduction.smoothing_bits", "int"),
    "even_smoothing": ("noise_reduction.even_smoothing", "float"),
    "odd_smoothing": ("noise_reduction.odd_smoothing", "float"),
    "min_signal_remaining": ("noise_reduction.min_signal_remaining", "float"),
    "enable_pcan": ("pcan_gain_control.enable_pcan", "int"),
    "pcan_strength": ("pcan_gain_control.strength", "float"),
    "pcan_offset": ("pcan_gain_control.offset", "float"),
    "gain_bits": ("pcan_gain_control.gain_bits", "int"),
    "enable_log": ("log_scale.enable_log", "int"),
    "scale_shift": ("log_scale.scale_shift", "int"),
}


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    """Everything the device pipeline needs, from the model, its metadata and the detector."""

    sample_rate: int
    window_samples: int
    stride_samples: int
    frames: int  # model input frames: the ring
    features: int
    hop: int  # frames between Invokes
    frontend: dict[str, Any]
    output_scale: float
    input_scale: float
    input_zero_point: int
    edges: tuple[int, ...]  # kQuantEdges
    labels: tuple[str, ...]
    window: int  # detector smoothing window (steps)
    step: StepModel | None = None  # a streaming step model: frames is then its step's frames

    def time_s(self, end_frame: int) -> float:
        """``tfkws.features.stream.frame_end_seconds``, rounded as ``tfkws detect`` writes it."""
        return round((end_frame * self.stride_samples + self.window_samples) / self.sample_rate, 4)

    def score(self, total: int) -> float:
        """The detector's smoothed probability, rounded as ``tfkws detect`` writes it."""
        return round(total / (256 * self.window), 4)


def quant_edges(output_scale: float, scale: float, zero_point: int) -> tuple[int, ...]:
    """First raw frontend value (0..65535, 65536 = never) of each int8 level -127..127.

    The int8 of a raw value is tfkws's ``features_to_int8(raw * output_scale)``, in float32.
    """
    raw = np.arange(65536, dtype=np.float32)
    x = (raw * np.float32(output_scale)) / np.float32(scale)
    trunc = np.trunc(x)
    q = np.where(np.abs(x - trunc) == 0.5, trunc + np.sign(x), np.round(x))
    q = np.clip(q + np.float32(zero_point), -128, 127).astype(np.int64)
    if np.any(np.diff(q) < 0):  # cannot happen for a positive scale; the table relies on it
        raise FirmwareGenError("feature quantization is not monotonic in the raw value")
    levels = np.arange(-127, 128)
    return tuple(int(e) for e in np.searchsorted(q, levels, side="left"))


def quantize_raw(edges: tuple[int, ...] | list[int], raw: np.ndarray) -> np.ndarray:
    """What the device computes from ``kQuantEdges``: int8 = (edges <= raw) - 128."""
    e = np.asarray(edges, np.int64)
    return (np.searchsorted(e, np.asarray(raw, np.int64), side="right") - 128).astype(np.int8)


def plan(
    info: ModelInfo, meta: dict | None, spec: dict, source: str, step: StepModel | None = None
) -> StreamPlan:
    """The device pipeline for this model, or a one-line FirmwareGenError saying what is missing.

    ``step``: the model is a streaming step model (``firmware_gen.step_model``): its frames
    input takes each step's new frames, and the detector's step must be the model's."""
    fc = (meta or {}).get("feature_config")
    if not isinstance(fc, dict):
        raise FirmwareGenError(
            f"{source}: streaming needs the tfkws metadata's feature_config (X.metadata.json)"
        )
    if fc.get("kind", "microfrontend") != "microfrontend":
        raise FirmwareGenError(
            f"{source}: the device pipeline runs the micro frontend; the model was trained on "
            f"{fc.get('kind')!r} features"
        )
    missing = [k for k in ("sample_rate", *FRONTEND_FIELDS, "output_scale") if k not in fc]
    if missing:
        raise FirmwareGenError(f"{source}: feature_config lacks {', '.join(missing)}")
    hop = int(spec.get("hop_frames", DEFAULT_HOP_FRAMES))
    if step is not None:
        t = info.input_tensors[step.frames_input]
        if t.shape[1:2] != (step.frames_per_step,):
            raise FirmwareGenError(
                f"{source}: frames input {list(t.shape)} does not take {step.frames_per_step} "
                "frame(s) per step"
            )
        if hop != step.frames_per_step:
            raise FirmwareGenError(
                f"{source}: the detector spec steps every {hop} frame(s), the step model every "
                f"{step.frames_per_step} (write the spec with tfkws detect on this model)"
            )
    elif len(info.input_tensors) != 1 or len(info.output_tensors) != 1:
        raise FirmwareGenError(
            f"{source}: the sliding window needs one input and one output tensor (the model has "
            f"{len(info.input_tensors)} and {len(info.output_tensors)})"
        )
    else:
        t = info.input_tensors[0]
    shape = list(t.shape)
    if (
        t.dtype != "INT8"
        or len(shape) < 3
        or shape[0] != 1
        or math.prod(shape[3:]) != 1
        or shape[2] != int(fc["num_channels"])
    ):
        raise FirmwareGenError(
            f"{source}: input {t.dtype.lower()} {shape} is not int8 [1, frames, "
            f"{fc['num_channels']}(, 1)] (the micro frontend's channels)"
        )
    rate = int(fc["sample_rate"])
    window = rate * int(fc["window_size_ms"]) // 1000
    stride = rate * int(fc["window_stride_ms"]) // 1000
    if not 0 < stride <= window:
        raise FirmwareGenError(f"{source}: feature stride must be in (0, window]")
    scale, zp = float(t.scale[0]), int(t.zero_point[0])
    return StreamPlan(
        sample_rate=rate,
        window_samples=window,
        stride_samples=stride,
        frames=int(shape[1]),
        features=int(shape[2]),
        hop=hop,
        frontend={k: fc[k] for k in FRONTEND_FIELDS},
        output_scale=float(fc["output_scale"]),
        input_scale=scale,
        input_zero_point=zp,
        edges=quant_edges(float(fc["output_scale"]), scale, zp),
        labels=tuple(spec["labels"]),
        window=int(spec["window"]),
        step=step,
    )


def _frontend_lines(frontend: dict[str, Any]) -> str:
    out = []
    for key, (field, ctype) in FRONTEND_FIELDS.items():
        v = frontend[key]
        # float settings reach the C library as (float)double, as the TensorFlow op's attrs do
        value = f"(float){float(v)!r}" if ctype == "float" else str(int(v))
        out.append(f"  c->{field} = {value};")
    return "\n".join(out)


def stream_main_cc(p: StreamPlan, ident: str, tool_version: str) -> str:
    """``NAME_stream_main.cc``: the example firmware (see the module docstring)."""
    ident = c_identifier(ident)
    edges = [str(e) + "u" for e in p.edges]
    edge_rows = "".join(f"    {', '.join(edges[i : i + 10])},\n" for i in range(0, len(edges), 10))
    up = f"{ident}_DETECTOR".upper()
    if p.step is None:
        what = (
            f"ring of the last {p.frames} frames -> full-window\n"
            f"// Invoke every {p.hop} frames -> {ident}_detector.h -> detections."
        )
        model_part = _window_part(p, ident)
    else:
        what = (
            f"the streaming step model: its\n// {p.hop} new frame(s) and its state (fed back "
            f"from the last Invoke) every {p.hop} frames ->\n// {ident}_detector.h -> detections."
        )
        model_part = _step_part(p, ident)
    return f"""\
// Generated by firmware_gen {tool_version}. Do not edit.
// A minimal streaming keyword spotter for {comment_safe(ident)}, the same pipeline as
// `tfkws detect`: int16 audio ({p.sample_rate} Hz) -> TFLM micro frontend (one frame every
// {p.stride_samples} samples) -> int8 features -> {what}
//
// Build it with {ident}_model_data.cc, TFLM, and TFLM's micro frontend library
// (tensorflow/lite/experimental/microfrontend/lib + kissfft) compiled with -ffp-contract=off
// (fused multiply-adds move its filterbank weights by an LSB, and the features with them), and
// provide board_read_audio() (your microphone driver). Define FIRMWARE_GEN_NO_MAIN to call
// {ident}_stream_init() and {ident}_stream_push() from your own main loop instead.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "{ident}_detector.h"
#include "{ident}_model_data.h"
#include "{ident}_op_resolver.h"

#ifndef {ident.upper()}_STREAM_ARENA_SIZE
#define {ident.upper()}_STREAM_ARENA_SIZE {ident}_model::kTensorArenaSize
#endif

static constexpr int kStreamSampleRate = {p.sample_rate};
static constexpr int kStreamWindowSamples = {p.window_samples};  // one frame's window
static constexpr int kStreamStrideSamples = {p.stride_samples};  // one frame per stride
static constexpr int kStreamFeatures = {p.features};

// int8 feature = (number of kQuantEdges <= raw frontend value) - 128: the exact result of
// clip(round(raw * {p.output_scale!r} / {p.input_scale!r}) + {p.input_zero_point}, -128, 127)
// in float32 as tfkws quantizes its features (65536: that level is never reached).
static const uint32_t kQuantEdges[{LEVELS}] = {{
{edge_rows}}};

static inline int8_t {ident}_quantize_feature(uint16_t raw) {{
  int lo = 0, hi = {LEVELS};  // edges at or below raw (they are non-decreasing)
  while (lo < hi) {{
    const int mid = (lo + hi) >> 1;
    if (kQuantEdges[mid] <= raw) {{
      lo = mid + 1;
    }} else {{
      hi = mid;
    }}
  }}
  return (int8_t)(lo - 128);
}}

// The frontend settings the model was trained with (tfkws metadata feature_config).
static void {ident}_frontend_config(struct FrontendConfig* c) {{
  FrontendFillConfigWithDefaults(c);
{_frontend_lines(p.frontend)}
}}

// Called for every detection: label index ({ident}_detector_labels), its score sum over the
// detector's window (smoothed probability = sum / (256 * {up}_WINDOW)) and the last frame of
// the window it fired on (it ends (end_frame * kStreamStrideSamples + kStreamWindowSamples)
// samples after the stream started).
typedef void (*{ident}_detection_fn)(int32_t label, int32_t sum, uint32_t end_frame);

{model_part}
// Feed `count` new samples (any number; one stride, {p.stride_samples}, is the natural unit).
// Returns the number of Invokes they caused, or -1 when one failed.
int {ident}_stream_push(const int16_t* samples, size_t count, {ident}_detection_fn on_detection) {{
  int invokes = 0;
  while (count > 0) {{
    size_t read = 0;
    struct FrontendOutput out =
        FrontendProcessSamples(&g_{ident}_stream.frontend, samples, count, &read);
    samples += read;
    count -= read;
    if (out.values != NULL && out.size == (size_t)kStreamFeatures) {{
      const int r = {ident}_stream_frame(out.values, on_detection);
      if (r < 0) return -1;
      invokes += r;
    }}
  }}
  return invokes;
}}

#ifndef FIRMWARE_GEN_NO_MAIN
// Your microphone driver: wait for the next `count` mono int16 samples at kStreamSampleRate,
// write them to `samples` and return how many were written (0 ends the loop).
extern "C" size_t board_read_audio(int16_t* samples, size_t count);

static void print_detection(int32_t label, int32_t sum, uint32_t end_frame) {{
  const uint32_t end_ms = (uint32_t)(((uint64_t)end_frame * kStreamStrideSamples +
                                      kStreamWindowSamples) * 1000u / kStreamSampleRate);
  printf("%s at %lu ms (score %ld/%d)\\n", {ident}_detector_labels[label], (unsigned long)end_ms,
         (long)sum, 256 * {up}_WINDOW);
}}

int main(void) {{
  if ({ident}_stream_init() != 0) {{
    printf("keyword spotter: cannot set up the frontend or TFLM\\n");
    return 1;
  }}
  static int16_t chunk[kStreamStrideSamples];
  size_t n;
  while ((n = board_read_audio(chunk, kStreamStrideSamples)) > 0) {{
    if ({ident}_stream_push(chunk, n, print_detection) < 0) return 1;
  }}
  return 0;
}}
#endif  // FIRMWARE_GEN_NO_MAIN
"""


def _init_fn(ident: str, reset: str) -> str:
    """``NAME_stream_init``: TFLM, the frontend, then the form's own fields (``reset``)."""
    return f"""\
// Returns 0, or -1 when the frontend or TFLM cannot be set up.
int {ident}_stream_init(void) {{
  {ident}_stream* s = &g_{ident}_stream;
  static {ident}_model::OpResolver resolver;
  if ({ident}_model::RegisterOps(resolver) != kTfLiteOk) return -1;
  const tflite::Model* model = tflite::GetModel(g_{ident}_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) return -1;
  static tflite::MicroInterpreter interpreter(model, resolver, g_{ident}_arena,
                                              sizeof(g_{ident}_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return -1;
  s->interpreter = &interpreter;
  struct FrontendConfig config;
  {ident}_frontend_config(&config);
  memset(&s->frontend, 0, sizeof(s->frontend));
  if (!FrontendPopulateState(&config, &s->frontend, kStreamSampleRate)) return -1;
  s->pos = 0;
  s->frames = 0;
  s->newest = &s->ring[0][0];
{reset}  {ident}_detector_reset(&s->detector);
  return 0;
}}
"""


def _window_part(p: StreamPlan, ident: str) -> str:
    """The sliding window: a ring of the model's input frames, a full Invoke every hop."""
    return f"""\
static constexpr int kStreamFrames = {p.frames};  // model input frames (the ring)
static constexpr int kStreamHopFrames = {p.hop};  // Invoke every this many new frames

struct {ident}_stream {{
  struct FrontendState frontend;
  int8_t ring[kStreamFrames][kStreamFeatures];  // feature frames; `pos` is the oldest once full
  int32_t pos;
  uint32_t frames;        // frames computed since the start
  const int8_t* newest;   // the newest frame's row of `ring`
  int32_t since;          // frames since the last Invoke
  {ident}_detector_state detector;
  tflite::MicroInterpreter* interpreter;
}};

static {ident}_stream g_{ident}_stream;
alignas(16) static uint8_t g_{ident}_arena[{ident.upper()}_STREAM_ARENA_SIZE];

{_init_fn(ident, _WINDOW_RESET)}
// One new feature frame: into the ring; on an Invoke frame, run the model and the detector.
// Returns 1 when it invoked the model, 0 when not, -1 when Invoke failed.
static int {ident}_stream_frame(const uint16_t* raw, {ident}_detection_fn on_detection) {{
  {ident}_stream* s = &g_{ident}_stream;
  for (int i = 0; i < kStreamFeatures; ++i) {{
    s->ring[s->pos][i] = {ident}_quantize_feature(raw[i]);
  }}
  s->newest = &s->ring[s->pos][0];
  s->pos = (s->pos + 1 == kStreamFrames) ? 0 : s->pos + 1;
  const uint32_t frame = s->frames++;
  if (s->frames < (uint32_t)kStreamFrames) return 0;
  // the first full window, then every kStreamHopFrames frames
  if (s->frames > (uint32_t)kStreamFrames && ++s->since < kStreamHopFrames) return 0;
  s->since = 0;
  int8_t* input = s->interpreter->input(0)->data.int8;
  const int older = (kStreamFrames - s->pos) * kStreamFeatures;  // oldest frames first
  memcpy(input, &s->ring[s->pos][0], older);
  memcpy(input + older, &s->ring[0][0], s->pos * kStreamFeatures);
  if (s->interpreter->Invoke() != kTfLiteOk) return -1;
  int32_t sum = 0;
  const int32_t label =
      {ident}_detector_step(&s->detector, s->interpreter->output(0)->data.int8, &sum);
  if (label >= 0 && on_detection != NULL) on_detection(label, sum, frame);
  return 1;
}}
"""


def _c_list(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)


def _step_part(p: StreamPlan, ident: str) -> str:
    """The step model: each step's new frames and the fed-back state, one Invoke per step."""
    m = p.step
    assert m is not None
    n = len(m.states)
    return f"""\
static constexpr int kStreamFrames = {p.frames};  // new frames per Invoke (the step model's input)
static constexpr int kStreamHopFrames = {p.hop};  // Invoke every this many new frames
static constexpr int kStreamFramesInput = {m.frames_input};  // interpreter input of the frames
static constexpr int kStreamLogitsOutput = {m.logits_output};  // interpreter output of the logits
// Invokes before the state holds a whole window: their outputs skip the detector
static constexpr uint32_t kStreamWarmupSteps = {m.warmup_steps};
// Last frame of the window an Invoke's logits score = its newest frame + this (a network
// valid along time never reads the window's last few frames, so it need not wait for them)
static constexpr int32_t kStreamEndOffset = {m.end_offset};
// State k: interpreter output kStateOutput[k] is fed back to input kStateInput[k] (same
// shape and int8 params), kStateBytes[k] bytes, zero-point filled (kStateZeroPoint[k]) at start.
static constexpr int kNumStates = {n};
static const int kStateInput[kNumStates] = {{{_c_list(tuple(i for i, _ in m.states))}}};
static const int kStateOutput[kNumStates] = {{{_c_list(tuple(o for _, o in m.states))}}};
static const int32_t kStateBytes[kNumStates] = {{{_c_list(m.state_bytes)}}};
static const int8_t kStateZeroPoint[kNumStates] = {{{_c_list(m.state_zero_points)}}};
static constexpr int kStateTotalBytes = {m.total_state_bytes};

struct {ident}_stream {{
  struct FrontendState frontend;
  int8_t ring[kStreamFrames][kStreamFeatures];  // this step's new frames, `pos` of them so far
  // The model's state between Invokes, outside the arena: TFLM plans the arena so an input's
  // bytes may hold other tensors once it has been read, so the state cannot wait in the input
  // tensors; it is copied out of the outputs after each Invoke and into the inputs before.
  alignas(16) int8_t state[kStateTotalBytes];
  int32_t pos;
  uint32_t frames;       // frames computed since the start
  const int8_t* newest;  // the newest frame's row of `ring`
  uint32_t steps;        // Invokes since the start
  {ident}_detector_state detector;
  tflite::MicroInterpreter* interpreter;
}};

static {ident}_stream g_{ident}_stream;
alignas(16) static uint8_t g_{ident}_arena[{ident.upper()}_STREAM_ARENA_SIZE];

{_init_fn(ident, _STEP_RESET)}
// One new feature frame: into this step's frames; once there are kStreamFrames, Invoke the
// step model on them and its state, keep its new state, and (after the warm-up) run the
// detector. Returns 1 when it invoked the model, 0 when not, -1 when Invoke failed.
static int {ident}_stream_frame(const uint16_t* raw, {ident}_detection_fn on_detection) {{
  {ident}_stream* s = &g_{ident}_stream;
  for (int i = 0; i < kStreamFeatures; ++i) {{
    s->ring[s->pos][i] = {ident}_quantize_feature(raw[i]);
  }}
  s->newest = &s->ring[s->pos][0];
  const uint32_t frame = s->frames++;
  if (++s->pos < kStreamFrames) return 0;
  s->pos = 0;
  tflite::MicroInterpreter* m = s->interpreter;
  memcpy(m->input(kStreamFramesInput)->data.int8, &s->ring[0][0], sizeof(s->ring));
  const int8_t* in = s->state;
  for (int k = 0; k < kNumStates; ++k) {{
    memcpy(m->input(kStateInput[k])->data.int8, in, kStateBytes[k]);
    in += kStateBytes[k];
  }}
  if (m->Invoke() != kTfLiteOk) return -1;
  int8_t* out = s->state;
  for (int k = 0; k < kNumStates; ++k) {{
    memcpy(out, m->output(kStateOutput[k])->data.int8, kStateBytes[k]);
    out += kStateBytes[k];
  }}
  if (s->steps++ < kStreamWarmupSteps) return 1;
  int32_t sum = 0;
  const int32_t label =
      {ident}_detector_step(&s->detector, m->output(kStreamLogitsOutput)->data.int8, &sum);
  if (label >= 0 && on_detection != NULL) {{
    on_detection(label, sum, (uint32_t)((int32_t)frame + kStreamEndOffset));
  }}
  return 1;
}}
"""


_WINDOW_RESET = "  s->since = 0;\n"
_STEP_RESET = """\
  s->steps = 0;
  int8_t* state = s->state;
  for (int k = 0; k < kNumStates; ++k) {
    memset(state, kStateZeroPoint[k], kStateBytes[k]);
    state += kStateBytes[k];
  }
"""


def read_wav(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """A 16-bit PCM mono WAV at ``sample_rate`` -> int16 samples (what the microphone gives)."""
    try:
        with wave.open(os.fspath(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise FirmwareGenError(f"{path}: audio file not found") from None
    except (OSError, EOFError, wave.Error) as e:
        raise FirmwareGenError(f"{path}: not a readable WAV file ({e})") from None
    if channels != 1 or width != 2 or rate != sample_rate:
        raise FirmwareGenError(
            f"{path}: stream audio must be 16-bit PCM mono at {sample_rate} Hz (the model's "
            f"rate), got {8 * width}-bit, {channels} channel(s), {rate} Hz"
        )
    x = np.frombuffer(data, dtype="<i2").astype(np.int16)
    if x.size == 0:
        raise FirmwareGenError(f"{path}: no samples")
    return x


def _summary(values: list[int]) -> dict[str, int | None]:
    if not values:
        return {"count": 0, "min": None, "median": None, "max": None}
    return {
        "count": len(values),
        "min": min(values),
        "median": int(statistics.median(values)),
        "max": max(values),
    }


def _parse(stdout: str) -> tuple[list[int], list[tuple[int, int, int]], dict[str, int]]:
    """(Invokes per step, detections (label, sum, end_frame), FG_STREAM figures)."""
    invokes, found, figures = [], [], {}
    for line in stdout.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "FG_STEP" and len(parts) == 3:
            invokes.append(int(parts[2]))
        elif parts[0] == "FG_DETECT" and len(parts) == 4:
            found.append((int(parts[1]), int(parts[2]), int(parts[3])))
        elif parts[0] == "FG_STREAM" and len(parts) == 3:
            figures[parts[1]] = int(parts[2])
    return invokes, found, figures


def _build(
    src_dir: Path,
    ident: str,
    p: StreamPlan,
    c: Cpu,
    kernels: str,
    root: Path,
    methods,
    library,
    work: Path,
    progress,
) -> Path:
    from firmware_gen.frontend import frontend_library, kissfft_root
    from firmware_gen.qemu import HARNESS
    from firmware_gen.tflm_lib import build_library
    from firmware_gen.toolchain import find_toolchain

    fe = frontend_library(root, c, kissfft_root(root))
    lib = build_library(
        root, c, kernels, ops_methods=methods if library == "model" else None, progress=progress
    )
    tc = find_toolchain()
    defines = [
        f'-DFG_STREAM_SOURCE="{ident}_stream_main.cc"',
        f"-DFG_STREAM_INIT={ident}_stream_init",
        f"-DFG_STREAM_PUSH={ident}_stream_push",
        f"-DFG_STREAM_STATE=g_{ident}_stream",
        f"-DFG_STREAM_ARENA=g_{ident}_arena",
        f"-DFG_MAX_DETECTIONS={MAX_DETECTIONS_PER_STEP}",
    ]
    steps = [
        ([tc.gcc, *lib.c_flags, "-c", str(HARNESS / "startup.c"), "-o", "startup.o"], "startup"),
        (
            [
                tc.gxx,
                *lib.cxx_flags,
                *defines,
                f"-I{src_dir}",
                "-c",
                str(HARNESS / "stream_main.cc"),
                "-o",
                "stream_main.o",
            ],
            f"{ident}_stream_main.cc",
        ),
        (
            [
                tc.gxx,
                *lib.cxx_flags,
                f"-I{src_dir}",
                "-c",
                str(src_dir / f"{ident}_model_data.cc"),
                "-o",
                "model_data.o",
            ],
            f"{ident}_model_data.cc",
        ),
    ]
    elf = work / "stream.elf"
    link = [
        tc.gxx,
        *c.flags,
        "-T",
        str(HARNESS / c.linker_script),
        f"-L{HARNESS}",
        "-nostartfiles",
        "--specs=rdimon.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map=stream.map",
        "startup.o",
        "stream_main.o",
        "model_data.o",
        str(fe.archive),
        str(lib.archive),
        "-o",
        str(elf),
    ]
    for cmd, what in [*steps, (link, "stream harness link")]:
        res = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if res.returncode != 0:
            lines = [ln for ln in res.stderr.splitlines() if "error" in ln] or [res.stderr[:200]]
            raise FirmwareGenError(f"{what}: does not build for {c.name}: {lines[0].strip()}")
    return elf


def run_stream(
    src_dir: Path,
    ident: str,
    p: StreamPlan,
    audio: np.ndarray,
    c: Cpu,
    kernels: str,
    root: Path,
    *,
    methods: list[str],
    library: str = "full",
    targets: list[dict] = (),
    progress=None,
) -> dict[str, Any]:
    """Run ``NAME_stream_main.cc`` on ``audio`` (int16) in QEMU; see the module docstring."""
    from firmware_gen.qemu import run_elf
    from firmware_gen.toolchain import find_toolchain

    t0 = time.time()
    if -(-audio.size // p.stride_samples) > MAX_STEPS:
        raise FirmwareGenError(
            f"stream audio is {audio.size / p.sample_rate:.0f} s long; the on-target run takes at "
            f"most {MAX_STEPS * p.stride_samples / p.sample_rate:.0f} s"
        )
    with tempfile.TemporaryDirectory(prefix="firmware_gen_stream_") as tmp:
        work = Path(tmp)
        elf = _build(
            Path(src_dir).absolute(), ident, p, c, kernels, root, methods, library, work, progress
        )
        (work / "audio.bin").write_bytes(np.ascontiguousarray(audio, "<i2").tobytes())
        out = subprocess.run([find_toolchain().nm, str(elf)], capture_output=True, text=True)
        syms = {
            q[2]: int(q[0], 16)
            for q in (ln.split() for ln in out.stdout.splitlines())
            if len(q) == 3
        }
        if progress:
            progress(
                f"{c.name}/{kernels}: streaming {audio.size / p.sample_rate:.2f} s of audio "
                f"through frontend, model and detector in QEMU {c.machine}"
            )
        run = run_elf(
            elf,
            c,
            ["audio.bin", str(p.stride_samples), "features.bin"],
            work,
            timeout=RUN_TIMEOUT_S,
            count_between=(syms["fg_invoke_begin"], syms["fg_invoke_end"]),
        )
        feature_bytes = (work / "features.bin").read_bytes() if run.done is not None else b""
    invokes, found, figures = _parse(run.stdout)
    steps = -(-audio.size // p.stride_samples)
    if run.done != steps or len(invokes) != steps or len(run.instructions) != steps:
        raise FirmwareGenError(f"stream on {c.name}/{kernels} failed: {run.problem()}")
    counts = run.instructions
    first = next((i for i, n in enumerate(invokes) if n), None)
    steady = counts[first:] if first is not None else []
    mean_steady = round(statistics.fmean(steady)) if steady else None
    per_second = p.sample_rate / p.stride_samples
    step_ms = 1000 * p.stride_samples / p.sample_rate
    shares = []
    for t in targets:
        if t.get("core") in c.cores and t.get("clock_hz") and mean_steady:
            shares.append(
                {
                    "target": t["key"],
                    "clock_hz": t["clock_hz"],
                    "mean_pct": round(100 * mean_steady * per_second / t["clock_hz"], 3),
                    "worst_step_pct": round(100 * max(counts) * per_second / t["clock_hz"], 3),
                }
            )
    detections = [
        {"label": p.labels[label], "time_s": p.time_s(end), "score": p.score(total)}
        for label, total, end in found
    ]
    return {
        "cpu": c.name,
        "kernels": kernels,
        "detections": detections,
        "device_detections": [
            {"label_index": label, "sum": total, "end_frame": end} for label, total, end in found
        ],
        "audio_samples": int(audio.size),
        "duration_s": round(audio.size / p.sample_rate, 4),
        "steps": steps,
        "step_ms": step_ms,
        "frames": figures.get("frames"),
        "invokes": sum(invokes),
        "hop_frames": p.hop,
        "form": "step" if p.step else "sliding window",
        # the int8 feature frames the model saw, [frames, features] row by row: compare with
        # the host's (e.g. tfkws detect's) to tell a frontend difference from a model one
        "features_sha256": hashlib.sha256(feature_bytes).hexdigest(),
        "instructions": {
            "per_step_steady_mean": mean_steady,
            "worst_step": max(counts),
            "invoke_steps": _summary([n for n, k in zip(counts, invokes, strict=True) if k]),
            "frame_only_steps": _summary(
                [
                    n
                    for i, (n, k) in enumerate(zip(counts, invokes, strict=True))
                    if not k and first is not None and i >= first
                ]
            ),
            "total": int(sum(counts)),
            "what": "one step = one stride of samples through frontend, int8 features, ring, "
            "and (every hop frames) Invoke + detector; steady = from the first Invoke on",
            "method": "QEMU TCG plugin between fg_invoke_begin/_end around each step",
        },
        "realtime_share": {
            "assumes": "one instruction per cycle (QEMU counts instructions, not cycles)",
            "steps_per_second": per_second,
            "targets": shares,
        },
        "ram_bytes": {
            "arena": figures.get("arena_size"),
            "arena_used": figures.get("arena_used"),
            "frontend_state_heap": figures.get("frontend_heap"),
            "stream_state": figures.get("state_bytes"),
            "feature_ring": p.frames * p.features,
            "model_state": p.step.total_state_bytes if p.step else 0,
            "total": sum(
                figures.get(k) or 0 for k in ("arena_size", "frontend_heap", "state_bytes")
            ),
            "note": "total = arena + frontend_state_heap + stream_state; stream_state holds the "
            "frontend state struct, the feature ring (feature_ring: a step's new frames for a "
            "step model), the step model's state between Invokes (model_state; its state "
            "tensors are in the arena too, as inputs and outputs) and the detector; "
            "frontend_state_heap is what FrontendPopulateState allocates (malloc); neither form "
            "has resource variables, so the arena is all of TFLM's RAM",
        },
        "seconds": round(time.time() - t0, 1),
    }


def compare_reference(variant: dict, reference: dict | str | os.PathLike) -> dict:
    """A ``run_stream`` result against a ``tfkws detect --json`` report: identical detections
    (label, time, score)? identical int8 features? (``tfkws detect --frontend tflm`` computes
    them with the device's frontend code; its default ``tf`` frontend differs in a few values.)"""
    if not isinstance(reference, dict):
        try:
            reference = json.loads(Path(reference).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FirmwareGenError(
                f"{reference}: cannot read a tfkws detect report ({e})"
            ) from None
    ref = reference.get("detections") if isinstance(reference, dict) else None
    if not isinstance(ref, list):
        raise FirmwareGenError("stream reference has no detections list (tfkws detect --json)")
    key = [(d["label"], d["time_s"], d["score"]) for d in variant["detections"]]
    want = [(d.get("label"), d.get("time_s"), d.get("score")) for d in ref]
    sha = reference.get("features_sha256")
    return {
        "identical": key == want,
        "device": len(key),
        "reference": len(want),
        "reference_frontend": reference.get("frontend"),
        "features_identical": None if sha is None else sha == variant["features_sha256"],
    }
