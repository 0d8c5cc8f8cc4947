"""`tfkws verify` on every zoo model: TFLM vs LiteRT on real clips, and the gate's verdict.

Each model is verified on the data its card's eval command names (``../shared/data/...`` is read
from ``--shared``); a model whose data is not on this machine is listed as skipped. Writes
``results/verify_zoo.{json,md}``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import common

from tfkws.verification.parity import verdict
from tfkws.verification.verify_model import verify_tflite
from tfkws.zoo.catalog import list_models


def card_data(card: dict[str, Any], shared: Path) -> tuple[Path, str]:
    """The ``--data`` and ``--split`` of a card's eval command, ``../shared`` read as ``shared``."""
    words = shlex.split(card["eval_command"])
    opts = dict(zip(words, words[1:], strict=False))
    data = opts["--data"]
    if data.startswith("../shared/"):
        data = str(shared / data.removeprefix("../shared/"))
    return Path(data), opts.get("--split", "all")


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# `tfkws verify` on the zoo models",
        "",
        f"Produced by `{results['command']}` at commit {results.get('commit', '?')}: each "
        f"model's int8 `.tflite` in the TFLM Python interpreter and in LiteRT's reference "
        f"kernels on {results['max_clips']} clips of the data its card names. Within 1 LSB: "
        "share of output elements. Ops run alone: for clips beyond 1 LSB (the 3 worst), how "
        "many of the model's ops were run as one-op models in both interpreters on the inputs "
        "they had in TFLM (not control flow; float outputs not judged), and the largest "
        "difference of their outputs. The gate passes at >= 99.9 % within 1 LSB, or else when "
        "every op run alone is within 1 LSB and top-1 agrees on >= 99 % of the clips.",
        "",
        "| model | clips | within 1 LSB | max diff (LSB) | top-1 TFLM = LiteRT | top-1 = float "
        "| ops run alone | their max diff (LSB) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["models"]:
        if "skipped" in r:
            lines.append(f"| {r['name']} | - | - | - | - | - | - | - | skipped: {r['skipped']} |")
            continue
        v = r["report"]
        flt = v["top1_agreement_vs_float"]
        ops = f"{v['ops_judged']} of {v['ops_total']}" if v["op_check_clips"] else "-"
        op_max = v["op_max_abs_lsb_diff"]
        lines.append(
            f"| {r['name']} | {v['n_clips']} | {100 * v['within_1lsb_share']:.2f} % "
            f"| {v['max_abs_lsb_diff']} | {100 * v['top1_agreement_tflm_vs_litert']:.1f} % "
            f"| {'-' if flt is None else f'{100 * flt:.1f} %'} | {ops} "
            f"| {'-' if op_max is None else op_max} | {'OK' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=common.REPO.parent / "shared")
    p.add_argument("--max_clips", type=int, default=200)
    p.add_argument("--models", default="all", help="comma-separated zoo names, or all")
    p.add_argument("--out", type=Path, default=common.RESULTS)
    p.add_argument("--name", default="verify_zoo")
    args = p.parse_args(argv)
    rows = []
    for m in list_models():
        if args.models != "all" and m.name not in args.models.split(","):
            continue
        data, split = card_data(m.card, args.shared)
        if not data.exists():
            rows.append({"name": m.name, "skipped": f"{data} not here"})
            continue
        print(f"verifying {m.name} on {data} ({split}) ...", flush=True)
        rep = verify_tflite(m.tflite, str(data), split, args.max_clips)
        rep = {k: v for k, v in rep.items() if k not in ("model", "ops")}
        ok, why = verdict(rep)
        print(f"  {'OK' if ok else 'FAIL'}: {why}", flush=True)
        rows.append({"name": m.name, "report": rep, "passed": ok, "why": why})
    common.write_table(args.name, args.out, markdown, max_clips=args.max_clips, models=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
