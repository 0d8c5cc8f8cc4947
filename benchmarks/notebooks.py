"""How long each notebook in ``notebooks/`` takes top to bottom, in its default (full) mode.

    python benchmarks/notebooks.py                 # every notebook, FAST off
    python benchmarks/notebooks.py --fast          # the test suite's small-data mode

The README promises each notebook runs "in minutes on 2 CPU cores"; this measures it. Each runs
in a fresh kernel in a temporary folder (as a user who opens it beside a fresh install), with
this checkout first on ``PYTHONPATH``. The machine's load average before and after each run is
recorded, since other work on the machine stretches wall time.

Writes ``results/notebooks.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import provenance  # noqa: E402

CELL_TIMEOUT_S = 3600


def run_notebook(path: Path, fast: bool) -> dict[str, Any]:
    """Execute one notebook; its wall seconds, cell count and the load around it."""
    import nbformat
    from nbclient import NotebookClient

    env_fast = os.environ.pop("TFKWS_NOTEBOOK_FAST", None)
    if fast:
        os.environ["TFKWS_NOTEBOOK_FAST"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
    )
    nb = nbformat.read(path, as_version=4)
    load_before = os.getloadavg()[0]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix=f"nb_{path.stem}_") as cwd:
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": cwd}},
        )
        client.execute()
    seconds = time.time() - t0
    if env_fast is not None:
        os.environ["TFKWS_NOTEBOOK_FAST"] = env_fast
    else:
        os.environ.pop("TFKWS_NOTEBOOK_FAST", None)
    return {
        "notebook": path.name,
        "mode": "fast" if fast else "default",
        "seconds": round(seconds, 1),
        "code_cells": sum(c.cell_type == "code" for c in nb.cells),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Notebooks: wall time top to bottom",
        "",
        f"Produced by `{r['command']}` on {r['machine']}.",
        "",
        "Each notebook in a fresh kernel and an empty folder. Load is the 1-minute load average "
        "before and after the notebook; a load above the core count means other work shared "
        "the machine and stretched the time.",
        "",
        "| notebook | mode | wall time | code cells | load before → after |",
        "|---|---|---:|---:|---|",
    ]
    for row in r["notebooks"]:
        m, s = divmod(round(row["seconds"]), 60)
        lines.append(
            f"| `{row['notebook']}` | {row['mode']} | {m} min {s:02d} s | {row['code_cells']} "
            f"| {row['load_1min_before']} → {row['load_1min_after']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook stems (default: all)")
    p.add_argument("--fast", action="store_true", help="small-data mode, as the tests run")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    paths = sorted((REPO / "notebooks").glob("*.ipynb"))
    if args.names:
        paths = [q for q in paths if q.stem in args.names]
    results: dict[str, Any] = {
        "benchmark": "notebooks",
        "command": " ".join(["python", "benchmarks/notebooks.py", *(argv or sys.argv[1:])]),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        **provenance.current(),
        "notebooks": [],
    }
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        results["notebooks"].append(run_notebook(path, args.fast))
        print(f"  {results['notebooks'][-1]['seconds']} s", flush=True)
    from tfkws import atomic

    name = "notebooks_fast" if args.fast else "notebooks"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(args.out / f"{name}.json", results)
    atomic.write_text(args.out / f"{name}.md", markdown(results))
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
