"""Bridge from tfkws to firmware_gen: ``tfkws export --firmware_dir`` and the demo call this.

firmware_gen works on any int8 TFLM model; here it gets a tfkws export, whose metadata JSON beside
the ``.tflite`` puts labels, quantization and feature-frontend constants into the C header.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

# Parts a KWS product is typically sized for: 256 KB, 320 KB and 1 MB of SRAM, and a Cortex-M55.
DEFAULT_TARGETS = ("nrf52840", "stm32f746", "stm32h743", "alif_e7_he")


def on_target_skip_reason() -> str | None:
    """None when firmware_gen can measure on target here (arm toolchain, QEMU, TFLM tree)."""
    from firmware_gen.toolchain import available, default_tflm_root

    reason = available()
    if reason is None and default_tflm_root() is None:
        reason = "no TFLM source tree (set TFLM_ROOT or provide ../shared/tflm)"
    return reason


def real_inputs(tflite: str | os.PathLike, data: str, num: int = 3) -> Any:
    """int8 model inputs from the first ``num`` clips of ``data``'s test split (else validation,
    else any split).

    Features and quantisation come from the model's metadata, as ``tfkws eval`` computes them.
    """
    from tfkws.conversion.export import load_metadata
    from tfkws.features.clips import clip_features
    from tfkws.verification.evaluate import features_for, open_for_model, quantize_input

    meta = load_metadata(tflite)
    ds = open_for_model(data, meta)
    have = [n for n in ("testing", "validation", "all") if ds.splits.get(n) or n == "all"]
    examples = list(ds.split(have[0]))
    x, _ = clip_features(examples[:num], meta["labels"], features_for(meta))
    return quantize_input(x, meta)


def generate_firmware(
    tflite: str | os.PathLike,
    out_dir: str | os.PathLike,
    targets: Sequence[str] = DEFAULT_TARGETS,
    name: str = "kws",
    on_target: Sequence[str] = (),
    kernels: Sequence[str] = ("reference",),
    inputs: Any = None,
) -> str:
    """Write ``NAME_model_data.{h,cc}``, ``NAME_op_resolver.h`` and the report; return a summary.

    ``on_target``: CPUs to also measure on in QEMU (``m4``, ``m55``) with ``kernels``, building
    only the TFLM sources the model needs (the demo's time budget).
    """
    from firmware_gen.cli import on_target_lines
    from firmware_gen.pipeline import generate

    res = generate(
        tflite,
        out_dir,
        name=name,
        targets=list(targets),
        on_target=list(on_target),
        kernels=list(kernels),
        inputs=inputs,
        tflm_library="model",
        progress=lambda msg: print(f"  {msg}", flush=True),
    )
    r = res.report
    lines = [
        f"firmware C files in {res.out_dir}: {', '.join(res.files)}",
        f"model {r['model_bytes']:,} bytes; arena: measured minimum {r['min_arena_bytes']:,} B "
        f"(host), 32-bit estimate {r['arena_32bit_estimate_bytes']:,} B, "
        f"kTensorArenaSize {r['recommended_arena_bytes']:,} B; {r['total_macs']:,} MACs",
    ]
    for t in r["targets"]:
        verdict = "fits" if t["fits"] else f"does NOT fit ({t['reason']})"
        basis = t.get("basis", "host")
        latency = (t.get("on_target") or {}).get("latency_estimate_ms") or {}
        est = "".join(
            f", ~{ms:.1f} ms/Invoke with {k} kernels (estimate: instructions / clock)"
            for k, ms in latency.items()
        )
        lines.append(f"  {t['key']:<12} {verdict} [{basis}]{est}")
    lines += on_target_lines(r)
    return "\n".join(lines)
