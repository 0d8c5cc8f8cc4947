"""``NAME_detector.h``: the keyword detector that turns a stream of int8 scores into detections.

The same algorithm as ``tfkws.streaming.detector`` (its reference; ``tests/test_detector.py``
compiles this header with the host compiler and compares detections on the same scores exactly).
All arithmetic is on integers (int8 scores in, int32 sums), so C and Python cannot disagree
through float rounding. Per step (one model Invoke):

0. The int8 output row becomes probability levels ``p`` in 0..255 (probability ``p / 256``):
   with ``softmax`` (tfkws models end in logits) an integer softmax,
   ``p[l] = min(255, (e[l] * 256 + S / 2) / S)``, ``e[l] = EXP[max - q[l]]``, ``S = sum(e)``,
   where ``EXP[d] = round(65536 * exp(-d * scale))`` is a table computed here (Python floats) and
   written into the header, so C never evaluates ``exp``; without it (the model ends in a
   softmax of scale 1/256) ``p = clamp(q - zero_point, 0, 255)``.
1. The level row enters a ring of the last ``window`` rows; ``sum[l]`` is the running sum
   of label ``l`` over the ring (the smoothed probability is ``sum / (256 * window)``).
2. Nothing fires until the ring is full, nor during the ``refractory`` steps after a detection
   (the ring still advances).
3. The candidate is the label with the largest sum among the keywords (labels with a threshold)
   and the gate labels (e.g. ``_silence_``, ``_unknown_``); ties go to the lower index.
4. It fires when it is a keyword and ``sum >= threshold * window``, ``threshold`` being a
   probability level (0..255); the refractory period then starts.

The spec is a plain dict (JSON), so firmware_gen needs nothing from tfkws::

    {"labels": [...], "thresholds": [level 0..255 or null, ...], "gated": [bool, ...],
     "window": steps, "refractory": steps, "softmax": bool, "scale": float, "zero_point": int,
     "hop_frames": feature frames per step (optional; tfkws detect writes it)}

``hop_frames`` is what a step is in time (the sliding window's Invoke interval), so ``window``
and ``refractory`` mean the same on the device; ``firmware_gen.stream`` needs it.

Generated text is a pure function of the spec (byte-identical for the same spec).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from firmware_gen.codegen import c_float, c_identifier, c_string, comment_safe
from firmware_gen.errors import FirmwareGenError

SPEC_KEYS = (
    "labels",
    "thresholds",
    "gated",
    "window",
    "refractory",
    "softmax",
    "scale",
    "zero_point",
)
OPTIONAL_KEYS = ("hop_frames",)
DEFAULT_HOP_FRAMES = 2  # tfkws detect's default (tfkws.streaming.sliding_window)
MAX_WINDOW = 1024  # the ring is window x labels bytes of RAM
MAX_LABELS = 255  # keeps the integer softmax's sums in uint32
EXP_ONE = 65536  # EXP[0]: exp(0) in the table's fixed point


def exp_table(scale: float) -> list[int]:
    """``EXP[d] = round(65536 * exp(-d * scale))`` for d = 0..255: the integer softmax's table."""
    return [int(round(EXP_ONE * math.exp(-d * float(scale)))) for d in range(256)]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_spec(spec: Any, where: str = "detector") -> dict[str, Any]:
    """The spec, validated (FirmwareGenError naming the bad field); unknown keys are refused."""
    if not isinstance(spec, dict):
        raise FirmwareGenError(f"{where}: detector spec must be a JSON object")
    missing = [k for k in SPEC_KEYS if k not in spec]
    unknown = sorted(set(spec) - set(SPEC_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        what = [f"missing {', '.join(missing)}"] * bool(missing)
        what += [f"unknown {', '.join(unknown)}"] * bool(unknown)
        raise FirmwareGenError(f"{where}: detector spec has {'; '.join(what)} key(s)")
    labels, thresholds, gated = spec["labels"], spec["thresholds"], spec["gated"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise FirmwareGenError(f"{where}: detector labels must be a non-empty list of strings")
    if len(labels) > MAX_LABELS:
        raise FirmwareGenError(f"{where}: detector takes at most {MAX_LABELS} labels")
    n = len(labels)
    if not isinstance(thresholds, list) or len(thresholds) != n:
        raise FirmwareGenError(f"{where}: detector needs one threshold per label ({n})")
    for t in thresholds:
        if t is not None and not (_is_int(t) and 0 <= t <= 255):
            raise FirmwareGenError(
                f"{where}: detector thresholds must be levels 0..255 (probability x 256) or "
                f"null, got {t!r}"
            )
    flags_ok = isinstance(gated, list) and all(isinstance(g, bool) for g in gated)
    if not flags_ok or len(gated) != n:
        raise FirmwareGenError(f"{where}: detector needs one gated flag (bool) per label ({n})")
    if any(g and t is not None for g, t in zip(gated, thresholds, strict=True)):
        raise FirmwareGenError(f"{where}: a gate label cannot also have a threshold")
    window, refractory = spec["window"], spec["refractory"]
    if not _is_int(window) or not 1 <= window <= MAX_WINDOW:
        raise FirmwareGenError(f"{where}: detector window must be 1..{MAX_WINDOW} steps")
    if not _is_int(refractory) or refractory < 0:
        raise FirmwareGenError(f"{where}: detector refractory must be >= 0 steps")
    if not isinstance(spec["softmax"], bool):
        raise FirmwareGenError(f"{where}: detector softmax must be true or false")
    scale, zp = spec["scale"], spec["zero_point"]
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
        raise FirmwareGenError(f"{where}: detector scale must be a positive number")
    if not _is_int(zp) or not -128 <= zp <= 127:
        raise FirmwareGenError(f"{where}: detector zero_point must be an int8 value")
    hop = spec.get("hop_frames", DEFAULT_HOP_FRAMES)
    if not _is_int(hop) or hop < 1:
        raise FirmwareGenError(f"{where}: detector hop_frames must be >= 1 feature frame")
    return spec


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """A detector spec from a JSON file (``tfkws detect --detector_spec`` writes one)."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise FirmwareGenError(f"{path}: cannot read detector spec ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FirmwareGenError(f"{path}: detector spec is not valid JSON ({e})") from None
    return check_spec(spec, str(path))


def detector_h(spec: dict[str, Any], ident: str, tool_version: str) -> str:
    """The header text: constants, a state struct and ``reset``/``step`` as static inline C."""
    check_spec(spec)
    ident = c_identifier(ident)
    p = f"{ident}_detector"
    up = p.upper()
    labels, n = spec["labels"], len(spec["labels"])
    window = spec["window"]
    # threshold * window, precomputed; labels that never fire get a sum no window can reach
    never = 255 * window + 1
    thr = [never if t is None else t * window for t in spec["thresholds"]]
    gated = [int(g) for g in spec["gated"]]
    considered = [int(t is not None) | g for t, g in zip(spec["thresholds"], gated, strict=True)]
    desc = ", ".join(
        f"{comment_safe(lab)}={'gate' if g else ('-' if t is None else t)}"
        for lab, t, g in zip(labels, spec["thresholds"], spec["gated"], strict=True)
    )

    def arr(values: list[int], per_line: int = 0) -> str:
        if not per_line:
            return ", ".join(str(v) for v in values)
        rows = [values[i : i + per_line] for i in range(0, len(values), per_line)]
        return "\n" + "".join(f"    {', '.join(str(v) for v in r)},\n" for r in rows)

    if spec["softmax"]:
        levels = f"""\
// Integer softmax of the int8 logits: EXP[d] = round(65536 * exp(-d * SCALE)).
static const uint32_t {p}_exp[256] = {{{arr(exp_table(spec["scale"]), 8)}}};

static inline void {p}_levels(const int8_t* scores, uint8_t* levels) {{
  int32_t l, top = scores[0];
  uint32_t total = 0, e;
  for (l = 1; l < {up}_NUM_LABELS; ++l) {{
    if (scores[l] > top) top = scores[l];
  }}
  for (l = 0; l < {up}_NUM_LABELS; ++l) total += {p}_exp[top - scores[l]];
  for (l = 0; l < {up}_NUM_LABELS; ++l) {{
    e = ({p}_exp[top - scores[l]] * 256u + total / 2u) / total;
    levels[l] = (uint8_t)(e > 255u ? 255u : e);
  }}
}}"""
    else:
        levels = f"""\
// The model ends in a softmax (scale 1/256): level = clamp(q - ZERO_POINT, 0, 255).
static inline void {p}_levels(const int8_t* scores, uint8_t* levels) {{
  int32_t l, v;
  for (l = 0; l < {up}_NUM_LABELS; ++l) {{
    v = (int32_t)scores[l] - {up}_ZERO_POINT;
    levels[l] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
  }}
}}"""
    guard = f"FIRMWARE_GEN_{up}_H_"
    return f"""\
// Generated by firmware_gen {tool_version}. Do not edit.
// Keyword detector: int8 scores per Invoke in, detections out (integer arithmetic only).
// Same algorithm as tfkws.streaming.detector: probability levels (0..255 = p x 256), smoothing
// over {up}_WINDOW steps, per-label thresholds, a refractory period, and gate labels that
// block detection while they lead.
// Thresholds (probability level): {desc}
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {up}_NUM_LABELS {n}
#define {up}_WINDOW {window}
#define {up}_REFRACTORY {spec["refractory"]}
// Output tensor quantization (logit or probability = (q - ZERO_POINT) * SCALE).
#define {up}_SCALE {c_float(float(spec["scale"]))}
#define {up}_ZERO_POINT {spec["zero_point"]}

static const char* const {p}_labels[{up}_NUM_LABELS] = {{{", ".join(c_string(x) for x in labels)}}};
// threshold * WINDOW per label ({never}: never fires)
static const int32_t {p}_threshold_sum[{up}_NUM_LABELS] = {{{arr(thr)}}};
// 1: takes part in the arg-max (a keyword or a gate label)
static const uint8_t {p}_considered[{up}_NUM_LABELS] = {{{arr(considered)}}};
// 1: a gate label (e.g. _silence_, _unknown_): when it leads, nothing fires
static const uint8_t {p}_gated[{up}_NUM_LABELS] = {{{arr(gated)}}};

{levels}

typedef struct {{
  uint8_t ring[{up}_WINDOW][{up}_NUM_LABELS];  // the last WINDOW probability-level rows
  int32_t sum[{up}_NUM_LABELS];                 // running sum of each label over the ring
  int32_t pos;                                  // ring slot the next row goes to
  int32_t count;                                // rows in the ring (saturates at WINDOW)
  int32_t cooldown;                             // steps left of the refractory period
}} {p}_state;

static inline void {p}_reset({p}_state* s) {{
  int32_t i, l;
  for (i = 0; i < {up}_WINDOW; ++i) {{
    for (l = 0; l < {up}_NUM_LABELS; ++l) s->ring[i][l] = 0;
  }}
  for (l = 0; l < {up}_NUM_LABELS; ++l) s->sum[l] = 0;
  s->pos = 0;
  s->count = 0;
  s->cooldown = 0;
}}

// One step: scores[{up}_NUM_LABELS] is the model's int8 output. Returns the label index
// detected, or -1; on a detection *out_sum (if not NULL) is that label's sum over the ring
// (smoothed probability = sum / (256 * WINDOW)).
static inline int32_t {p}_step({p}_state* s, const int8_t* scores, int32_t* out_sum) {{
  uint8_t levels[{up}_NUM_LABELS];
  int32_t l, best = -1;
  {p}_levels(scores, levels);
  for (l = 0; l < {up}_NUM_LABELS; ++l) {{
    if (s->count == {up}_WINDOW) s->sum[l] -= s->ring[s->pos][l];
    s->ring[s->pos][l] = levels[l];
    s->sum[l] += levels[l];
  }}
  s->pos = (s->pos + 1 == {up}_WINDOW) ? 0 : s->pos + 1;
  if (s->count < {up}_WINDOW) s->count += 1;
  if (s->cooldown > 0) {{
    s->cooldown -= 1;
    return -1;
  }}
  if (s->count < {up}_WINDOW) return -1;
  for (l = 0; l < {up}_NUM_LABELS; ++l) {{
    if ({p}_considered[l] && (best < 0 || s->sum[l] > s->sum[best])) best = l;
  }}
  if (best < 0 || {p}_gated[best] || s->sum[best] < {p}_threshold_sum[best]) return -1;
  s->cooldown = {up}_REFRACTORY;
  if (out_sum) *out_sum = s->sum[best];
  return best;
}}

#endif  // {guard}
"""
