"""The fit report: one JSON document (schema in README.md, ``format`` + ``version``) and Markdown.

RAM needed on a target = recommended arena + the user's RAM reserve (stack, buffers, app);
flash needed = model bytes + runtime code estimate + the user's flash reserve. Headroom = limit -
needed; the model fits when both headrooms are >= 0.

When the model was measured on the target's CPU in QEMU (``--on-target``), that target uses the
measured figures instead: the largest on-target minimum arena over the kernel sets measured (plus
the same margin) and the TFLM flash taken from the linked ELF; its latency is estimated from the
instructions per Invoke at the target's clock (an estimate: one instruction per cycle assumed,
QEMU counts instructions, not cycles).
"""

from __future__ import annotations

from firmware_gen.arena import round_up

REPORT_FORMAT = "firmware-gen-report"
REPORT_VERSION = 1


def on_target_for(target: dict, report: dict) -> dict | None:
    """The on-target figures that stand for ``target`` (same core), or None."""
    from firmware_gen.cpus import CPUS

    variants = [
        v
        for v in (report.get("on_target") or {}).get("variants", [])
        if target.get("core", "").lower() in CPUS[v["cpu_key"]].cores
    ]
    if not variants:
        return None
    worst = max(variants, key=lambda v: (v["arena"]["min_bytes"], v["kernels"]))
    margin = report["arena"]["margin_pct"]
    latency = {}
    if target.get("clock_hz"):
        latency = {
            v["kernels"]: round(1e3 * v["instructions"]["per_invoke"] / target["clock_hz"], 3)
            for v in variants
        }
    return {
        "cpu": worst["cpu"],
        "arena_min_bytes": worst["arena"]["min_bytes"],
        "arena_from": f"{worst['cpu']}/{worst['kernels']}",
        "recommended_arena_bytes": round_up(worst["arena"]["min_bytes"] * (1 + margin / 100)),
        "tflm_flash_bytes": max(v["flash"]["flash_bytes"]["tflm"] for v in variants),
        "latency_estimate_ms": latency,
    }


def target_fit(target: dict, ram_needed: int, flash_needed: int, basis: str = "host") -> dict:
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
        "basis": basis,
    }


def fit_targets(report: dict, targets: list[dict]) -> list[dict]:
    """Fit verdict per target: on-target figures where measured for its core, else host ones."""
    reserve = report["reserve"]
    out = []
    for t in targets:
        t = {k: v for k, v in t.items() if k not in ("on_target",)}
        ot = on_target_for(t, report)
        if ot is None:
            ram = report["arena"]["recommended_bytes"] + reserve["ram_bytes"]
            flash = report["flash_estimate_bytes"] + reserve["flash_bytes"]
            out.append(target_fit(t, ram, flash))
            continue
        ram = ot["recommended_arena_bytes"] + reserve["ram_bytes"]
        flash = report["model_bytes"] + ot["tflm_flash_bytes"] + reserve["flash_bytes"]
        fit = target_fit(t, ram, flash, basis=f"on-target {ot['arena_from']} (QEMU)")
        fit["on_target"] = ot
        out.append(fit)
    return out


def fit_summary(report: dict) -> tuple[bool, str]:
    """(fits every target, one-line reason when not) for ``--check``."""
    bad = [t for t in report["targets"] if not t["fits"]]
    wrong = [
        f"{v['cpu']}/{v['kernels']}"
        for v in (report.get("on_target") or {}).get("variants", [])
        if not v["parity"]["ok"]
    ]
    reasons = []
    if bad:
        reasons.append("does not fit " + "; ".join(f"{t['key']} ({t['reason']})" for t in bad))
    if wrong:
        reasons.append(
            f"on-target outputs differ from the TFLM Python interpreter ({', '.join(wrong)})"
        )
    return not reasons, "; ".join(reasons)


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
        + (
            f"(+{a['margin_pct']:g} % margin)"
            if r.get("recommended_arena_basis", "host") == "host"
            else f"({r['recommended_arena_basis']})"
        ),
        f"- RecordingMicroAllocator: total {a['recording']['total_bytes']:,}, head "
        f"{a['recording']['head_bytes']:,} (activations, scratch), tail "
        f"{a['recording']['tail_bytes']:,} (persistent) bytes",
        f"- TFLM runtime code, **estimate**: {rt['bytes']:,} bytes ({rt['target']})",
        f"- compute: {r['total_macs']:,} MACs per inference"
        + (
            ""
            if r.get("total_macs_complete", True)
            else " **at least**: a WHILE loop's trip count is not in the graph (not a counted "
            "loop), so its body is counted once"
        ),
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
                    "basis",
                ]
            ),
            _row(["---"] * 10),
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
                        t.get("basis", "host"),
                    ]
                )
            )
        lines += [
            "",
            f"RAM needed = recommended arena + reserve ({r['reserve']['ram_bytes']:,} "
            f"bytes); flash needed = model + runtime estimate + reserve "
            f'({r["reserve"]["flash_bytes"]:,} bytes). Basis "on-target": arena minimum '
            "measured on that core in QEMU (+ the same margin) and TFLM flash from the linked ELF.",
            "",
        ]
    else:
        lines += ["No targets given (--target, --ram/--flash).", ""]
    if r.get("on_target"):
        lines += on_target_markdown(r)
    if r.get("stream"):
        lines += stream_markdown(r)
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
                    f"{ly['macs']:,}" + (f" x {ly['runs']}" if ly.get("runs", 1) != 1 else ""),
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


def on_target_markdown(r: dict) -> list[str]:
    """The "On target (QEMU)" section: one row per (CPU, kernel set)."""
    ot = r["on_target"]
    lines = [
        "## On target (TFLM C++ in QEMU)",
        "",
        f"TFLM from `{ot['tflm_root']}`; inputs: {ot['inputs']}. Arena: smallest that allocates "
        "(16-byte steps, bisected in QEMU; min - 16 checked to fail). Instructions per Invoke "
        "counted by a QEMU TCG plugin (instructions, not cycles). Flash from the ELF's sections.",
        "",
        _row(
            [
                "CPU / kernels",
                "arena min (host)",
                "arena min (target)",
                "min-16 fails",
                "instructions / Invoke",
                "flash: model",
                "flash: TFLM",
                "flash: ELF total",
                "parity vs Python TFLM",
            ]
        ),
        _row(["---"] * 9),
    ]
    for v in ot["variants"]:
        p = v["parity"]
        parity = (
            f"bit-exact ({p['records']} records)"
            if p["bit_exact"]
            else f"{p['differing_elements']}/{p['elements']} differ, "
            f"{p['elements_beyond_1_lsb']} beyond 1 LSB (max {p['max_abs_diff']})"
        )
        if not p["ok"]:
            parity = "**" + parity + "** (expected bit-exact)"
        fl = v["flash"]["flash_bytes"]
        lines.append(
            _row(
                [
                    f"{v['cpu']} / {v['kernels']}",
                    f"{r['min_arena_bytes']:,}",
                    f"**{v['arena']['min_bytes']:,}**",
                    "yes" if v["arena"]["min_minus_16_fails"] else "NO",
                    f"{v['instructions']['per_invoke']:,}",
                    f"{fl['model']:,}",
                    f"{fl['tflm']:,}",
                    f"{fl['total']:,}",
                    parity,
                ]
            )
        )
    est = [
        f"{t['key']} ({t['clock_hz'] / 1e6:g} MHz): "
        + ", ".join(f"{k} {ms:,.2f} ms" for k, ms in t["on_target"]["latency_estimate_ms"].items())
        for t in r["targets"]
        if t.get("on_target") and t["on_target"]["latency_estimate_ms"]
    ]
    lines.append("")
    if est:
        lines += [
            "Latency **estimate** at each target's clock (instructions / clock, i.e. one "
            "instruction per cycle; real cores differ with wait states and dual issue): "
            + "; ".join(est)
            + ".",
            "",
        ]
    lines += [
        "Flash: TFLM = the library code and data the model's ops pull in (plus the op resolver);"
        " the ELF total adds the harness and the C library with semihosting printf.",
        "",
    ]
    return lines


def stream_markdown(r: dict) -> list[str]:
    """The "Streaming pipeline" section: one row per (CPU, kernel set), then the detections."""
    st = r["stream"]
    if st.get("form") == "step":
        model = (
            f"streaming step model Invoked on each {st['hop_frames']} new frame(s) with its "
            "state fed back (state copied out of the arena and back in around each Invoke)"
        )
    else:
        model = (
            f"ring of {st['frames_per_window']} frames, full-window Invoke every "
            f"{st['hop_frames']} frames"
        )
    lines = [
        "## Streaming pipeline on target (QEMU)",
        "",
        f"`{r['model']['c_name']}_stream_main.cc` on `{st.get('audio', '?')}`: micro frontend, "
        f"int8 features, {model}, detector. Instructions per step (one frame stride of audio) "
        "counted by the QEMU TCG plugin; real-time share = mean instructions per second / clock "
        "(one instruction per cycle assumed).",
        "",
        _row(
            [
                "CPU / kernels",
                "detections",
                "Invokes",
                "instructions / step (steady mean)",
                "worst step",
                "real-time share",
                "RAM: arena + frontend heap + stream state",
                "vs tfkws detect",
            ]
        ),
        _row(["---"] * 8),
    ]
    for v in st["variants"]:
        ins, ram = v["instructions"], v["ram_bytes"]
        share = ", ".join(
            f"{t['target']} {t['mean_pct']:g} %" for t in v["realtime_share"]["targets"]
        )
        ref = v.get("reference")
        lines.append(
            _row(
                [
                    f"{v['cpu']} / {v['kernels']}",
                    str(len(v["detections"])),
                    str(v["invokes"]),
                    f"{ins['per_step_steady_mean']:,}",
                    f"{ins['worst_step']:,}",
                    share or "-",
                    f"{ram['arena']:,} + {ram['frontend_state_heap']:,} + {ram['stream_state']:,}",
                    "-" if ref is None else ("identical" if ref["identical"] else "**differ**"),
                ]
            )
        )
    lines.append("")
    for v in st["variants"][:1]:
        for d in v["detections"]:
            lines.append(f"- {d['time_s']:.3f} s {d['label']} {d['score']:.4f}")
    lines.append("")
    return lines
