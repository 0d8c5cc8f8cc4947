"""The fit report: one JSON document (schema in README.md, ``format`` + ``version``) and Markdown.

RAM needed on a target = recommended arena + the user's RAM reserve (stack, buffers, app);
flash needed = model bytes + runtime code estimate + the user's flash reserve. Headroom = limit -
needed; the model fits when both headrooms are >= 0.
"""

from __future__ import annotations

REPORT_FORMAT = "firmware-gen-report"
REPORT_VERSION = 1


def target_fit(target: dict, ram_needed: int, flash_needed: int) -> dict:
    ram_head = target["sram_bytes"] - ram_needed
    flash_head = target["flash_bytes"] - flash_needed
    reasons = []
    if ram_head < 0:
        reasons.append(f"RAM needs {ram_needed} bytes, has {target['sram_bytes']}")
    if flash_head < 0:
        reasons.append(f"flash needs {flash_needed} bytes, has {target['flash_bytes']}")
    return {
        **target,
        "ram_needed_bytes": ram_needed,
        "flash_needed_bytes": flash_needed,
        "ram_headroom_bytes": ram_head,
        "flash_headroom_bytes": flash_head,
        "fits": not reasons,
        "reason": "; ".join(reasons),
    }


def fit_summary(report: dict) -> tuple[bool, str]:
    """(fits every target, one-line reason when not) for ``--check``."""
    bad = [t for t in report["targets"] if not t["fits"]]
    if not bad:
        return True, ""
    return False, "does not fit " + "; ".join(f"{t['key']} ({t['reason']})" for t in bad)


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def _row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def to_markdown(r: dict) -> str:
    """Human-readable version of the report (same facts as the JSON)."""
    a = r["arena"]
    rt = r["runtime_code_estimate"]
    lines = [
        f"# firmware_gen report: {r['model']['file']}",
        "",
        f"- model: `{r['model']['file']}`, sha256 `{r['model']['sha256']}`, "
        f"C name `{r['model']['c_name']}`",
        f"- model (flash): **{r['model_bytes']:,} bytes** ({_kb(r['model_bytes'])})",
        f"- tensor arena, measured minimum in TFLM on this 64-bit host: "
        f"**{r['min_arena_bytes']:,} bytes** (checked: {a['host_min_bytes'] - 16:,} bytes fails"
        f"{'' if a['search']['min_minus_16_fails'] else ' -- NOT confirmed'})",
        f"- arena estimate for a 32-bit MCU: {r['arena_32bit_estimate_bytes']:,} bytes "
        "(host minimum minus pointer-size savings of the persistent structures)",
        f"- recommended `kTensorArenaSize`: **{r['recommended_arena_bytes']:,} bytes** "
        f"(+{a['margin_pct']:g} % margin)",
        f"- RecordingMicroAllocator: total {a['recording']['total_bytes']:,}, head "
        f"{a['recording']['head_bytes']:,} (activations, scratch), tail "
        f"{a['recording']['tail_bytes']:,} (persistent) bytes",
        f"- TFLM runtime code, **estimate**: {rt['bytes']:,} bytes ({rt['target']})",
        f"- compute: {r['total_macs']:,} MACs per inference",
        "",
        "## Targets",
        "",
    ]
    if r["targets"]:
        lines += [
            _row(
                [
                    "target",
                    "core",
                    "fits",
                    "RAM needed",
                    "SRAM",
                    "RAM headroom",
                    "flash needed",
                    "flash",
                    "flash headroom",
                ]
            ),
            _row(["---"] * 9),
        ]
        for t in r["targets"]:
            lines.append(
                _row(
                    [
                        t["key"],
                        t["core"],
                        "yes" if t["fits"] else "**no**",
                        f"{t['ram_needed_bytes']:,}",
                        f"{t['sram_bytes']:,}",
                        f"{t['ram_headroom_bytes']:,}",
                        f"{t['flash_needed_bytes']:,}",
                        f"{t['flash_bytes']:,}",
                        f"{t['flash_headroom_bytes']:,}",
                    ]
                )
            )
        lines += [
            "",
            f"RAM needed = recommended arena + reserve ({r['reserve']['ram_bytes']:,} "
            f"bytes); flash needed = model + runtime estimate + reserve "
            f"({r['reserve']['flash_bytes']:,} bytes).",
            "",
        ]
    else:
        lines += ["No targets given (--target, --ram/--flash).", ""]
    lines += [
        "## Ops (op resolver)",
        "",
        _row(["op", "resolver call", "uses", "code bytes (est.)"]),
        _row(["---"] * 4),
    ]
    for o in r["ops"]:
        lines.append(
            _row(
                [
                    o["op"],
                    f"`{o['method']}()`",
                    o["count"],
                    f"{rt['per_op_bytes'].get(o['op'], 0):,}",
                ]
            )
        )
    lines += [
        "",
        "## Layers",
        "",
        _row(["#", "op", "output shape", "output bytes", "weight bytes", "MACs"]),
        _row(["---"] * 6),
    ]
    for ly in r["layers"]:
        idx = ly["index"] if ly["subgraph"] == 0 else f"{ly['subgraph']}.{ly['index']}"
        lines.append(
            _row(
                [
                    idx,
                    ly["op"],
                    "x".join(map(str, ly["output_shape"])) or "scalar",
                    f"{ly['output_bytes']:,}",
                    f"{ly['weight_bytes']:,}",
                    f"{ly['macs']:,}",
                ]
            )
        )
    lines += ["", f"Runtime code basis: {rt['basis']}", ""]
    if r.get("compile"):
        lines += ["## Compile check", ""]
        for label, c in r["compile"]["compilers"].items():
            for unit, sections in c["objects"].items():
                secs = ", ".join(f"{k} {v:,}" for k, v in sections.items()) or "no sections"
                lines.append(f"- {label} ({c['compiler']} {c['version']}): `{unit}`: {secs}")
        for key in ("op_resolver", "arm"):
            if key in r["compile"] and str(r["compile"][key]).startswith("skipped"):
                lines.append(f"- {r['compile'][key]}")
        lines.append("")
    return "\n".join(lines)
