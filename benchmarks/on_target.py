"""On-target truth per model: the host arena against the Cortex-M4 / Cortex-M55 arena in QEMU.

For DS-CNN S/M/L and the other model families (folded and int8-converted as ``tfkws export``
deploys them, static batch 1, input 49x40, 12 classes), ``firmware_gen.generate(...,
on_target=...)`` builds each model with TFLM C++ for Cortex-M4 (QEMU mps2-an386) and Cortex-M55
(mps3-an547), reference and CMSIS-NN kernels, and measures: the minimum arena (bisected on the
target, min - 16 checked to fail), instructions per Invoke (TCG plugin, SysTick cross-check),
flash from the ELF, and output parity with the TFLM Python interpreter on real clips.

A trained export under ``benchmarks/runs`` is used where one exists (its own feature
quantisation); otherwise the model has random weights (random representative data): arena,
instructions and flash depend on shapes, not weight values. Parity inputs are always real clips
(Arabic Speech Commands features, quantised with the model's input scale/zero point).
Latency is an **estimate**: instructions / board clock (QEMU counts instructions, not cycles).

    python benchmarks/on_target.py        # writes benchmarks/results/on_target.{json,md}
    python benchmarks/on_target.py --models ds_cnn_s --cpus m4 --kernels reference
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import common  # sets TF_USE_LEGACY_KERAS and puts the repo on sys.path (before TensorFlow)

REPO = common.REPO

import numpy as np  # noqa: E402

from tfkws import atomic  # noqa: E402

DEFAULT_MODELS = [
    "ds_cnn_s",
    "ds_cnn_m",
    "ds_cnn_l",
    "repcnn",
    "bc_resnet",
    "slimmable_ds_cnn@0.25",
    "slimmable_kwt@0.25",
]
# Trained exports (git-ignored run folders) used instead of random weights when present.
TRAINED = {
    "ds_cnn_s": "benchmarks/runs/asc_dscnn/ds_cnn_sizes/ds_cnn_sizes.tflite",
    "bc_resnet": "benchmarks/runs/repcnn/bc_resnet_width1/bc_resnet_width1.tflite",
    "repcnn": "benchmarks/runs/repcnn/repcnn/repcnn.tflite",
}
INPUT_SHAPE = (49, 40)
NUM_CLASSES = 12
DATA = REPO.parent / "shared" / "data" / "arabic_speech_commands"


def random_export(name: str, path: Path) -> None:
    """What tfkws export deploys for a registered model, with random weights."""
    from firmware_gen_models import convert

    from tfkws.folding.fold import fold_model
    from tfkws.models.catalog import build_model

    registered, _, width = name.partition("@")
    model = build_model(registered, INPUT_SHAPE, NUM_CLASSES, {}, batch_size=1)
    if width:
        from tfkws.folding.slim_width import extract_width

        model = extract_width(model, float(width), batch_size=1)
    path.write_bytes(convert(fold_model(model), INPUT_SHAPE, samples=4))


def real_inputs(tflite: bytes, clips: list[Path]) -> np.ndarray:
    """Micro-frontend features of real clips, quantised with the model's own input parameters."""
    from firmware_gen.model import parse_model
    from tfkws.data.audio import load_audio
    from tfkws.features.config import FeatureConfig
    from tfkws.features.extract import compute_features, features_to_int8

    t = parse_model(tflite).input_tensors[0]
    fc = FeatureConfig()
    audio = np.stack([load_audio(c, fc.sample_rate, num_samples=fc.clip_samples) for c in clips])
    x = features_to_int8(compute_features(audio, fc), t.scale[0], t.zero_point[0])
    return x.reshape((len(clips), *t.shape[1:]))


def pick_clips(n: int, seed: int) -> list[Path]:
    files = sorted(DATA.rglob("*.flac"))
    if not files:
        raise SystemExit(f"no clips under {DATA}")
    rng = np.random.default_rng(seed)
    return [files[i] for i in sorted(rng.choice(len(files), n, replace=False))]


def measure(name: str, args: argparse.Namespace, clips: list[Path]) -> dict:
    from firmware_gen.cpus import CPUS
    from firmware_gen.pipeline import generate
    from firmware_gen.targets import builtin_targets

    t0 = time.time()
    boards = [t for t in builtin_targets().values() if t["clock_hz"]]
    with tempfile.TemporaryDirectory(prefix="on_target_bench_") as tmp:
        trained = TRAINED.get(name)
        if trained and (REPO / trained).exists():
            path, source = REPO / trained, f"trained ({trained})"
        else:
            path, source = Path(tmp) / f"{name.replace('@', '_w')}.tflite", "random weights"
            random_export(name, path)
        data = path.read_bytes()
        res = generate(
            path,
            Path(tmp) / "out",
            name="bench",
            targets=[t["key"] for t in boards],
            on_target=args.cpus.split(","),
            kernels=args.kernels.split(","),
            inputs=real_inputs(data, clips),
            tflm_library=args.tflm_library,
            progress=lambda m: print(f"  {m}", flush=True),
        )
    r = res.report
    variants = []
    for v in r["on_target"]["variants"]:
        latency = {
            b["key"]: round(1e3 * v["instructions"]["per_invoke"] / b["clock_hz"], 2)
            for b in boards
            if b["core"] in CPUS[v["cpu_key"]].cores
        }
        variants.append(
            {
                "cpu": v["cpu"],
                "kernels": v["kernels"],
                "arena_min_bytes": v["arena"]["min_bytes"],
                "min_minus_16_fails": v["arena"]["min_minus_16_fails"],
                "instructions_per_invoke": v["instructions"]["per_invoke"],
                "systick_agrees_within_pct": v["instructions"]["systick_cross_check"][
                    "agrees_within_pct"
                ],
                "flash_bytes": v["flash"]["flash_bytes"],
                "tflm_code_bytes": v["flash"]["tflm_code_bytes"],
                "parity": {
                    k: v["parity"][k]
                    for k in (
                        "records",
                        "elements",
                        "bit_exact",
                        "differing_elements",
                        "elements_beyond_1_lsb",
                        "max_abs_diff",
                    )
                },
                "latency_estimate_ms": latency,
                "library": v["library"],
                "seconds": v["seconds"],
            }
        )
    return {
        "model": name,
        "weights": source,
        "model_bytes": r["model_bytes"],
        "macs": r["total_macs"],
        "ops": [o["op"] for o in r["ops"]],
        "host_min_arena_bytes": r["min_arena_bytes"],
        "variants": variants,
        "seconds": round(time.time() - t0, 1),
    }


def frontend_clips() -> list[Path]:
    """A few English clips of different kinds (keyword, other word, silence) for the frontend."""
    sc = REPO.parent / "shared" / "data" / "speech_commands_test_dev"
    picks = [("yes", 0), ("left", 1), ("_silence_", 0)]
    return [sorted((sc / d).glob("*.flac"))[i] for d, i in picks if (sc / d).is_dir()]


def frontend_row(clips: list[Path]) -> dict:
    """Device micro frontend vs the training features on the same clips (Cortex-M4)."""
    from tfkws.errors import TfkwsError
    from tfkws.verification.frontend_parity import frontend_parity

    try:
        return frontend_parity(clips)
    except TfkwsError as e:
        return {"error": str(e)}


def _pct(target: int, host: int) -> str:
    return f"{100 * (target - host) / host:+.0f} %"


def to_markdown(doc: dict) -> str:
    from firmware_gen.targets import builtin_targets

    boards = {t["key"]: t for t in builtin_targets().values() if t["clock_hz"]}
    lines = [
        "# On target: TFLM C++ on emulated Cortex-M4 and Cortex-M55 (QEMU)",
        "",
        f"Produced by `{doc['command']}` on 2 CPU cores (QEMU 7.2, {doc['compiler']}, TFLM from "
        f"`{doc['tflm_root']}`). Int8, batch 1, input 49x40, 12 classes (trained exports keep "
        "their own class count); weights: trained where a run exists, else random (arena, "
        "instructions and flash depend on shapes, not weights). Parity inputs: "
        f"{doc['clips']} real Arabic Speech Commands clips through the micro frontend, quantised "
        "with each model's input parameters.",
        "",
        "- **arena**: smallest arena (16-byte steps) with which AllocateTensors succeeds, bisected "
        "on the target in QEMU; min - 16 checked to fail; Invoke checked at the minimum. Host = "
        "the TFLM Python interpreter (x86-64, reference kernels), same search.",
        "- **instructions**: per Invoke, counted by a QEMU TCG plugin (SysTick under -icount as "
        "cross-check). Not cycles.",
        "- **flash**: from the linked ELF (--gc-sections): the model array, TFLM code+data for the "
        "model's ops, and the ELF total (adds the harness and newlib with semihosting printf).",
        "- **parity**: outputs vs the TFLM Python interpreter on the same int8 inputs (bit-exact "
        "expected for reference kernels; for CMSIS-NN: elements that differ / beyond 1 LSB).",
        "",
        "## Arena: host vs target",
        "",
        "| model | weights | model bytes | MACs | host min arena | CPU / kernels | target min "
        "arena | vs host | min-16 fails | instructions / Invoke | flash TFLM | flash ELF total "
        "| parity |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for r in doc["rows"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} |" + " |" * 11)
            continue
        for i, v in enumerate(r["variants"]):
            p = v["parity"]
            parity = (
                f"bit-exact ({p['records']} clips)"
                if p["bit_exact"]
                else f"{p['differing_elements']}/{p['elements']} differ, "
                f"{p['elements_beyond_1_lsb']} > 1 LSB"
            )
            head = (
                [
                    r["model"],
                    "trained" if r["weights"].startswith("trained") else "random",
                    f"{r['model_bytes']:,}",
                    f"{r['macs']:,}",
                    f"{r['host_min_arena_bytes']:,}",
                ]
                if i == 0
                else ["", "", "", "", ""]
            )
            lines.append(
                "| "
                + " | ".join(
                    [
                        *head,
                        f"{v['cpu']} / {v['kernels']}",
                        f"{v['arena_min_bytes']:,}",
                        _pct(v["arena_min_bytes"], r["host_min_arena_bytes"]),
                        "yes" if v["min_minus_16_fails"] else "NO",
                        f"{v['instructions_per_invoke']:,}",
                        f"{v['flash_bytes']['tflm']:,}",
                        f"{v['flash_bytes']['total']:,}",
                        parity,
                    ]
                )
                + " |"
            )
    keys = sorted(
        {b for r in doc["rows"] for v in r.get("variants", []) for b in v["latency_estimate_ms"]},
        key=lambda k: (boards[k]["core"], boards[k]["clock_hz"]),
    )
    lines += [
        "",
        "## Latency estimate per Invoke (ms) at each board's clock",
        "",
        "**Estimate**: instructions / clock, i.e. one instruction per cycle. Real Cortex-M4 cores "
        "take more cycles for loads, multiplies and flash wait states; Cortex-M55 dual-issues "
        "some MVE instructions. QEMU does not model either.",
        "",
        "| model | CPU / kernels | "
        + " | ".join(f"{k} ({boards[k]['clock_hz'] / 1e6:g} MHz)" for k in keys)
        + " |",
        "| --- | --- |" + " ---: |" * len(keys),
    ]
    for r in doc["rows"]:
        for v in r.get("variants", []):
            cells = [
                f"{v['latency_estimate_ms'][k]:,.2f}" if k in v["latency_estimate_ms"] else ""
                for k in keys
            ]
            lines.append(
                f"| {r['model']} | {v['cpu']} / {v['kernels']} | " + " | ".join(cells) + " |"
            )
    fe = doc.get("frontend")
    lines += ["", "## Micro frontend on the device (Cortex-M4)", ""]
    if doc.get("frontend_command"):
        at = f" at commit `{doc['frontend_commit']}`" if doc.get("frontend_commit") else ""
        lines += [f"Produced by `{doc['frontend_command']}`{at}.", ""]
    if fe is None:
        lines.append("Not run (--no-frontend).")
    elif "error" in fe:
        lines.append(f"Not measured: {fe['error']}")
    else:
        lines.append(
            f"TFLM's micro frontend built for Cortex-M4 and run in QEMU on {fe['clips']} real "
            "clips "
            f"({', '.join(c['clip'] for c in fe['per_clip'])}), against the features tfkws trains "
            "on (TensorFlow's audio_microfrontend op): "
            + (
                "**identical**"
                if fe["identical"]
                else f"{fe['differing_values']} of {fe['values']:,} values differ (max "
                f"{fe['max_abs_diff_raw']} raw units, i.e. "
                f"{fe['max_abs_diff_raw'] * 10 / 256:.2f} in feature units)"
            )
            + "; the same sources built for x86-64 with the host compiler give "
            + (
                "exactly the device's output, so the differences come from the sources "
                "(TensorFlow's own copies of the frontend and kissfft vs the TFLM tree's frontend "
                "and its kissfft v130 files), not from the Cortex-M build"
                if fe.get("device_equals_host_build_of_same_sources")
                else "**a different output** than the device"
            )
            + f". {fe['instructions_per_clip']['min']:,}-{fe['instructions_per_clip']['max']:,} "
            f"instructions per 1 s clip; frontend library flash {fe['frontend_flash_bytes']:,} B."
        )
        if fe.get("kissfft"):
            lines += ["", f"kissfft sources: {fe['kissfft']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    from firmware_gen.toolchain import find_toolchain, tflm_root

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--cpus", default="m4,m55")
    p.add_argument("--kernels", default="reference,cmsis-nn")
    p.add_argument("--clips", type=int, default=3, help="real clips for output parity")
    p.add_argument(
        "--tflm-library",
        default="model",
        choices=["model", "full"],
        help="model: only the TFLM sources each model's ops need (same objects and flags as the "
        "full library; --gc-sections keeps the same code either way)",
    )
    p.add_argument("--no-frontend", action="store_true")
    p.add_argument(
        "--frontend-only",
        action="store_true",
        help="only (re)measure the device frontend and update it in the existing results",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = p.parse_args()
    clips = pick_clips(a.clips, a.seed)
    argv = " ".join(sys.argv[1:])
    if a.frontend_only:
        import json

        doc = json.loads((a.out / "on_target.json").read_text())
        fe_clips = frontend_clips() + clips[:1]
        doc["frontend"] = frontend_row(fe_clips)
        kiss = os.environ.get("KISSFFT_ROOT")
        if kiss and "error" not in doc["frontend"]:
            doc["frontend"]["kissfft"] = (
                f"$KISSFFT_ROOT={kiss} (not in ../shared/tflm): TFLM's bundled kiss_fft.c and "
                "_kiss_fft_guts.h, tools/kiss_fftr.c from upstream kissfft with TFLM include "
                "paths"
            )
        env = f"KISSFFT_ROOT={kiss} " if kiss else ""
        doc["frontend_command"] = f"{env}python benchmarks/on_target.py {argv}"
        doc["frontend_commit"] = common.provenance.current().get("commit")
        atomic.write_json(a.out / "on_target.json", doc)
        atomic.write_text(a.out / "on_target.md", to_markdown(doc))
        return
    doc = {
        "command": "python benchmarks/on_target.py" + (f" {argv}" if argv else ""),
        **common.provenance.current(),
        "compiler": find_toolchain().version,
        "tflm_root": str(tflm_root()),
        "clips": len(clips),
        "clip_files": [str(c.relative_to(DATA)) for c in clips],
        "input_shape": INPUT_SHAPE,
        "num_classes": NUM_CLASSES,
        "rows": [],
        "frontend": None if a.no_frontend else frontend_row(clips),
    }
    for name in [m for m in a.models.split(",") if m]:
        print(f"{name} ...", flush=True)
        try:
            doc["rows"].append(measure(name, a, clips))
        except Exception as e:  # keep the other rows; the table says what failed
            traceback.print_exc()
            doc["rows"].append({"model": name, "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        print(doc["rows"][-1], flush=True)
        # written after every model, so a long run leaves usable results at any point
        atomic.write_json(a.out / "on_target.json", doc)
        atomic.write_text(a.out / "on_target.md", to_markdown(doc))


if __name__ == "__main__":
    main()
