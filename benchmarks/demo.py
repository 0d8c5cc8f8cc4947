"""The README's first command, measured: `tfkws demo` with real Speech Commands clips to score.

    python benchmarks/demo.py                      # one demo run + results/demo.{json,md}
    python benchmarks/demo.py --repeat 2           # and check that a second run is byte-identical

Runs the demo exactly as a user would (the `tfkws` console command, its default settings) into
``benchmarks/runs/demo/runN`` with ``--real_data`` pointing at the Speech Commands test clips in
``../shared/data``, then records its summary: model size, accuracy of the int8 model in TFLM on
the synthetic test split and on real speech (per class), TFLM/LiteRT parity, the wall time of
each stage and, with ``--repeat 2``, whether the two runs wrote byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import provenance  # noqa: E402

REPO = provenance.REPO
REAL = REPO.parent / "shared" / "data" / "speech_commands_test_dev"
COMPARED = ("model_int8.tflite", "firmware/kws_model_data.cc", "firmware/kws_model_data.h")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_demo(out: Path, real: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    t = time.time()
    cmd = [sys.executable, "-m", "tfkws.cli.main", "demo", "--out", str(out)]
    cmd += ["--real_data", str(real)]
    subprocess.run(cmd, check=True, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    summary = json.loads((out / "summary.json").read_text())
    summary["wall_seconds"] = round(time.time() - t, 1)
    real_eval = json.loads((out / "eval_real.json").read_text())
    summary["real_per_class"] = real_eval.get("per_class")
    summary["digests"] = {f: digest(out / f) for f in COMPARED if (out / f).exists()}
    return summary


def markdown(doc: dict) -> str:
    s = doc["runs"][0]
    real = s.get("int8_real_accuracy") or {}
    ver = s.get("verify", {})
    lines = [
        "# The demo (`tfkws demo`): synthetic speech only, scored on real speech",
        "",
        f"Produced by `{doc['command']}`.",
        "",
        "| params | .tflite bytes | int8 TFLM, synthetic test split | int8 TFLM, real Speech "
        "Commands | TFLM vs LiteRT max diff (LSB) | synthesis (s) | training (s) | whole demo (s) "
        "| identical on a second run |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {s['params']:,} | {s['tflite_bytes']:,} | "
        f"{100 * s['int8_synthetic_test_accuracy']:.2f} % | "
        f"{100 * real.get('accuracy', float('nan')):.2f} % ({real.get('num_clips', 0):,} clips) | "
        f"{ver.get('max_abs_lsb_diff', '?')} | {s['synth_seconds']:.0f} | "
        f"{s['train_seconds']:.0f} | {s['wall_seconds']:.0f} | {doc['identical']} |",
        "",
        "Real-speech accuracy per class (int8 in TFLM):",
        "",
        "| class | accuracy |",
        "|---|---:|",
    ]
    for label, acc in sorted((s.get("real_per_class") or {}).items()):
        value = acc["accuracy"] if isinstance(acc, dict) else acc
        lines.append(f"| {label} | {100 * value:.1f} % |")
    lines += [
        "",
        f"Real data: `{real.get('data')}` (half of the Speech Commands v0.02 12-class test set). "
        "The model never hears real speech in training; chance is 8.3 %.",
        "",
        (
            f"Wall times on {doc['machine']}, load average {doc['load_average']:.1f} when it "
            "started (above 2 the demo shared the machine with other jobs: upper bounds)."
            if "load_average" in doc
            else "Wall times on a 2-core CPU machine shared with other jobs (tests, a training) "
            "during this run: upper bounds; its load was not recorded."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real_data", type=Path, default=REAL)
    p.add_argument("--repeat", type=int, default=1, help="2: also check a second run is identical")
    p.add_argument("--work_dir", type=Path, default=REPO / "benchmarks" / "runs" / "demo")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = p.parse_args()
    code = provenance.current()  # before the runs: the code they ran
    load = os.getloadavg()[0]
    runs = [run_demo(a.work_dir / f"run{i}", a.real_data) for i in range(a.repeat)]
    identical = (
        "not checked"
        if len(runs) < 2
        else ("yes" if all(r["digests"] == runs[0]["digests"] for r in runs) else "NO")
    )
    argv = " ".join(sys.argv[1:])
    doc = {
        "benchmark": "demo",
        "command": "python benchmarks/demo.py" + (f" {argv}" if argv else ""),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        **code,
        "load_average": round(load, 2),
        "identical": identical,
        "runs": runs,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("demo.json", json.dumps(doc, indent=2) + "\n"), ("demo.md", markdown(doc))):
        tmp = a.out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(a.out / name)
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
