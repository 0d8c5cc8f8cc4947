"""Bridge from tfkws to firmware_gen: ``tfkws export --firmware_dir`` and the demo call this.

firmware_gen works on any int8 TFLM model; here it gets a tfkws export, whose metadata JSON beside
the ``.tflite`` puts labels, quantization and feature-frontend constants into the C header.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

# Parts a KWS product is typically sized for: 256 KB, 320 KB and 1 MB of SRAM, and a Cortex-M55.
DEFAULT_TARGETS = ("nrf52840", "stm32f746", "stm32h743", "alif_e7_he")


def generate_firmware(
    tflite: str | os.PathLike,
    out_dir: str | os.PathLike,
    targets: Sequence[str] = DEFAULT_TARGETS,
    name: str = "kws",
) -> str:
    """Write ``NAME_model_data.{h,cc}``, ``NAME_op_resolver.h`` and the report; return a summary."""
    from firmware_gen.pipeline import generate

    res = generate(tflite, out_dir, name=name, targets=list(targets))
    r = res.report
    lines = [
        f"firmware C files in {res.out_dir}: {', '.join(res.files)}",
        f"model {r['model_bytes']:,} bytes; arena: measured minimum {r['min_arena_bytes']:,} B "
        f"(host), 32-bit estimate {r['arena_32bit_estimate_bytes']:,} B, "
        f"kTensorArenaSize {r['recommended_arena_bytes']:,} B; {r['total_macs']:,} MACs",
    ]
    for t in r["targets"]:
        verdict = "fits" if t["fits"] else f"does NOT fit ({t['reason']})"
        lines.append(f"  {t['key']:<12} {verdict}")
    return "\n".join(lines)
