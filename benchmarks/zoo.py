"""Put a trained run into the pretrained model zoo, with a card whose every figure is measured here.

    python benchmarks/zoo.py add NAME --run RUN --data DATA --split validation \\
        --title "..." --train_command "tfkws train ..." [--tflite T] [--supernet]
    python benchmarks/zoo.py add NAME --run RUN ... --streaming_results results/streaming_X.json
    python benchmarks/zoo.py table      # results/zoo.{json,md} from the cards

``add`` exports the run with ``tfkws export`` (unless ``--tflite`` names an export), measures int8
accuracy with ``tfkws eval`` (TFLM), bytes, MACs and the host arena with ``firmware-gen``, and the
arena on Cortex-M4 and Cortex-M55 (CMSIS-NN kernels, QEMU) with ``firmware-gen --on-target``;
then writes ``tfkws/zoo/models/NAME/`` (``.tflite``, metadata, ``card.json``, ``CARD.md``) and the
zoo table. Each step runs the user-facing command, recorded in the card as it ran.

``--streaming_results`` (a ``benchmarks/streaming.py`` results file of this run) makes a streaming
entry: ``tfkws export --streaming`` writes the window twin and the step model, which must be
byte-identical to the step model the benchmark scored; the card gets its operating points and the
step model's cost per Invoke on Cortex-M.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import provenance  # noqa: E402

from tfkws.runs.files import BEST_WEIGHTS  # noqa: E402

REPO = provenance.REPO
sys.path.insert(0, str(REPO))

from tfkws.zoo.catalog import (  # noqa: E402
    CARD,
    CARD_FORMAT,
    CARD_MD,
    METADATA,
    STEP_METADATA,
    STEP_TFLITE,
    SUPERNET,
    TFLITE,
    ZOO_DIR,
    card_markdown,
    deployed_params,
    list_models,
)

RESULTS = REPO / "benchmarks" / "results"
ENV = os.environ | {"PYTHONPATH": str(REPO)}


def sh(argv: list[str]) -> str:
    """Run a user-facing command (``tfkws`` / ``firmware-gen``) and return it as typed."""
    tool = {"tfkws": "tfkws.cli.main", "firmware-gen": "firmware_gen.cli"}[argv[0]]
    print("$", shlex.join(argv), flush=True)
    subprocess.run([sys.executable, "-m", tool, *argv[1:]], check=True, cwd=REPO, env=ENV)
    return shlex.join(argv)


def rel(path: Path) -> str:
    """A path as a user in the repository root would type it."""
    path = Path(path).resolve()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


def features_note(fc: dict) -> str:
    kind = {"microfrontend": "TFLM micro frontend", "logmel": "log-mel", "mfcc": "MFCC"}
    return (
        f"{kind.get(fc['kind'], fc['kind'])}, {fc['num_channels']} channels, "
        f"{fc['window_size_ms']} ms window, {fc['window_stride_ms']} ms stride, "
        f"{fc['clip_duration_ms']} ms clips at {fc['sample_rate']} Hz"
    )


def shipped_metadata(text: str) -> str:
    """Export metadata as the zoo ships it: the source run and checkpoint as paths from the
    repository root (runs under ``benchmarks/runs`` are git-ignored but named the way the card's
    commands name them), dropped when outside the repository (a machine's own scratch folder)."""
    meta = json.loads(text)
    for key in ("source_run", "source_checkpoint"):
        if meta.get(key):
            path = Path(meta[key]).resolve()
            if path.is_relative_to(REPO):
                meta[key] = str(path.relative_to(REPO))
            else:
                del meta[key]
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


def add(a: argparse.Namespace) -> None:
    run = Path(a.run).resolve()
    with tempfile.TemporaryDirectory(prefix="zoo_") as tmp_name:
        tmp = Path(tmp_name)
        if a.tflite:
            tflite = Path(a.tflite).resolve()
            export_cmd = a.export_command or ""
        else:
            tflite = tmp / TFLITE
            streaming = ["--streaming"] if a.streaming_results else []
            export_cmd = sh(
                ["tfkws", "export", "--run", rel(run), *streaming, "--out", str(tflite)]
            )
            shown_run = a.run_as or rel(run)
            export_cmd = export_cmd.replace(f" --out {tflite}", "").replace(rel(run), shown_run)
        meta_src = tflite.with_name(tflite.stem + ".metadata.json")
        meta = json.loads(meta_src.read_text())
        eval_json = tmp / "eval.json"
        eval_cmd = sh(
            ["tfkws", "eval", "--model", str(tflite), "--data", rel(Path(a.data)), "--split",
             a.split, "--json", str(eval_json)]
        )  # fmt: skip
        ev = json.loads(eval_json.read_text())
        fw = tmp / "fw"
        fw_cmd = sh(
            ["firmware-gen", str(tflite), "--out", str(fw), "--on-target", a.on_target,
             "--kernels", a.kernels, "--tflm-library", "model", "--name", "kws"]
        )  # fmt: skip
        report = json.loads((fw / "kws_report.json").read_text())
        shown = lambda c: c.replace(str(tflite), TFLITE).replace(f" --json {eval_json}", "")  # noqa: E731
        arena, _ = _on_target(report)
        stream_card = (
            streaming_card(a, run, tflite, report, tmp / "fw_step") if a.streaming_results else None
        )
        card = {
            "format": CARD_FORMAT,
            "name": a.name,
            "title": a.title,
            "description": a.description,
            "data": a.data_note or rel(Path(a.data)),
            "labels": meta["labels"],
            "features": meta["feature_config"],
            "features_note": features_note(meta["feature_config"]),
            "train_command": a.train_command,
            "export_command": export_cmd,
            "eval_command": shown(eval_cmd),
            "firmware_command": shown(fw_cmd).replace(f" --out {fw}", " --out fw"),
            "accuracy": {
                "int8_tflm": ev["accuracy"],
                "split": a.split,
                "clips": ev["num_clips"],
                "per_class": {k: v["accuracy"] for k, v in ev["per_class"].items()},
            },
            "params": deployed_params(tflite),
            "trained_params": meta["params"],
            "macs": report["total_macs"],
            "tflite_bytes": report["model_bytes"],
            "arena_bytes": arena,
            "ops": [o["op"] for o in report["ops"]],
            "notes": a.notes,
            **({"streaming": stream_card} if stream_card else {}),
            **provenance.current(),
        }
        dest = ZOO_DIR / a.name
        stage = ZOO_DIR / f".{a.name}.tmp"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        shutil.copy2(tflite, stage / TFLITE)
        (stage / METADATA).write_text(shipped_metadata(meta_src.read_text()))
        if stream_card:
            shutil.copy2(tflite.with_name(STEP_TFLITE), stage / STEP_TFLITE)
            shutil.copy2(tflite.with_name(STEP_METADATA), stage / STEP_METADATA)
        if a.supernet:
            (stage / SUPERNET).mkdir()
            for f in ("run_config.json", BEST_WEIGHTS, "results.json"):
                if (run / f).exists():
                    shutil.copy2(run / f, stage / SUPERNET / f)
        (stage / CARD).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        (stage / CARD_MD).write_text(card_markdown(card))
        shutil.rmtree(dest, ignore_errors=True)
        stage.rename(dest)
    print(f"zoo: {dest}")
    table()


def _on_target(report: dict) -> tuple[dict[str, int], dict[str, int]]:
    """(arena per ``cpu/kernels`` with ``host``, instructions per Invoke per ``cpu/kernels``)."""
    arena, instructions = {"host": report["min_arena_bytes"]}, {}
    for v in (report.get("on_target") or {}).get("variants", []):
        arena[f"{v['cpu']}/{v['kernels']}"] = v["arena"]["min_bytes"]
        instructions[f"{v['cpu']}/{v['kernels']}"] = v["instructions"]["per_invoke"]
    return arena, instructions


def streaming_card(
    a: argparse.Namespace, run: Path, tflite: Path, window_report: dict, fw: Path
) -> dict:
    """The card's ``streaming`` section: the benchmark's operating points for this run's step
    model (checked byte-identical to the one it scored) and the step model's cost on target."""
    import hashlib

    res = json.loads(Path(a.streaming_results).read_text())
    if Path(res["run"]).resolve() != run:
        raise SystemExit(f"{a.streaming_results}: results of {res['run']}, not of {run}")
    step = tflite.with_name(STEP_TFLITE)
    scored = run / "step.tflite"
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    if not scored.exists() or digest(scored) != digest(step):
        raise SystemExit(f"{step}: not the step model {a.streaming_results} scored ({scored})")
    sh(
        ["firmware-gen", str(step), "--out", str(fw), "--on-target", a.on_target,
         "--kernels", a.kernels, "--tflm-library", "model", "--name", "kws"]
    )  # fmt: skip
    report = json.loads((fw / "kws_report.json").read_text())
    step_arena, step_instr = _on_target(report)
    window_arena, window_instr = _on_target(window_report)
    step_doc = json.loads(tflite.with_name(STEP_METADATA).read_text())
    step_meta = step_doc["streaming"]
    form = res["forms"]["streaming (external state)"]
    hop_ms = form["hop_ms"]
    wanted = [float(t) for t in a.operating_points.split(",")]
    points = [
        {k: t[k] for k in ("threshold", "false_reject_rate", "false_accepts_per_hour")}
        for t in form["thresholds"]
        if any(abs(t["threshold"] - w) < 1e-9 for w in wanted)
    ]
    st = res["streams"]
    return {
        "frames_per_step": step_meta["frames_per_step"],
        "hop_ms": hop_ms,
        "state_bytes": step_meta["state_bytes"],
        "step_tflite_bytes": report["model_bytes"],
        "step_macs": report["total_macs"],
        "step_arena_bytes": step_arena,
        "step_instructions": step_instr,
        "window_tflite_bytes": window_report["model_bytes"],
        "window_macs": window_report["total_macs"],
        "window_arena_bytes": window_arena,
        "window_instructions": window_instr,
        "detector": {
            "smoothing_ms": form["detector"]["window_steps"] * hop_ms,
            "refractory_ms": form["detector"]["refractory_steps"] * hop_ms,
            "gates": [x for x in step_doc["labels"] if x.startswith("_")],
            "one_threshold_for_every_keyword": True,
        },
        "operating_points": points,
        "at_target": form["at_target"],
        "target_false_accepts_per_hour": form["target_false_accepts_per_hour"],
        "keywords_placed": form["keywords_placed"],
        "keyword_hours": form["keyword_stream_hours"],
        "keyword_free_hours": form["keyword_free_hours"],
        "tolerance_s": form["tolerance_s"],
        "streams_note": (
            f"val.csv speakers; distractors: {st['english_distractors']:,} English Speech "
            f"Commands clips and {st['synthetic_distractors']:,} espeak-ng words over looped "
            "Speech Commands noise"
        ),
        "command": res["command"],
        "commit": res["commit"],
        "dirty": bool(res.get("dirty")),
        "results": rel(Path(a.streaming_results)),
        "firmware_command": "firmware-gen model_int8_step.tflite --out fw_step --on-target "
        f"{a.on_target} --kernels {a.kernels} --tflm-library model --name kws",
    }


def table(_a: argparse.Namespace | None = None) -> None:
    """results/zoo.{json,md}: every card's figures in one table."""
    cards = [m.card for m in list_models()]
    doc = {
        "benchmark": "zoo",
        "command": "python benchmarks/zoo.py table",
        **provenance.current(),
        "cards": cards,
    }
    lines = [
        "# Pretrained model zoo (`tfkws zoo list`)",
        "",
        "Produced by `python benchmarks/zoo.py table` from the cards in `tfkws/zoo/models/` "
        "(each card written by `python benchmarks/zoo.py add`, with its own commands).",
        "",
        "| model | int8 TFLM accuracy | deployed params | MACs | .tflite bytes | arena host | "
        "arena M4 CMSIS-NN | arena M55 CMSIS-NN | data |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cards:
        ar = c["arena_bytes"]
        m4 = next((v for k, v in ar.items() if k.startswith("cortex-m4/")), None)
        m55 = next((v for k, v in ar.items() if k.startswith("cortex-m55/")), None)
        lines.append(
            f"| {c['name']} | {100 * c['accuracy']['int8_tflm']:.2f} % "
            f"({c['accuracy']['clips']:,} clips, {c['accuracy']['split']}) | {c['params']:,} | "
            f"{c['macs']:,} | {c['tflite_bytes']:,} | {ar['host']:,} | "
            f"{f'{m4:,}' if m4 else '—'} | {f'{m55:,}' if m55 else '—'} | {c['data']} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("zoo.json", json.dumps(doc, indent=2) + "\n"),
        ("zoo.md", "\n".join(lines) + "\n"),
    ):
        tmp = RESULTS / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(RESULTS / name)
    print("\n".join(lines))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    ad = sub.add_parser("add")
    ad.add_argument("name")
    ad.add_argument("--run", required=True, help="trained run folder")
    ad.add_argument("--tflite", help="an export of the run (default: tfkws export it now)")
    ad.add_argument("--run_as", default="", help="the run folder as the train command names it")
    ad.add_argument("--export_command", default="", help="how --tflite was exported")
    ad.add_argument("--data", required=True)
    ad.add_argument("--data_note", default="", help="data and split, for people")
    ad.add_argument("--split", default="validation")
    ad.add_argument("--title", required=True)
    ad.add_argument("--description", default="")
    ad.add_argument("--notes", default="")
    ad.add_argument("--train_command", required=True)
    ad.add_argument("--on_target", default="m4,m55")
    ad.add_argument("--kernels", default="cmsis-nn")
    ad.add_argument("--supernet", action="store_true", help="ship the run for slim select")
    ad.add_argument("--streaming_results", help="benchmarks/streaming.py results of this run")
    ad.add_argument("--operating_points", default="0.8,0.9,0.95,0.99", help="thresholds shown")
    sub.add_parser("table")
    a = p.parse_args()
    (add if a.action == "add" else table)(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
