"""Refresh the README's result blocks from ``benchmarks/results/*.md``.

A block is ``<!-- X.md -->`` ... ``<!-- /X.md -->``; it gets X.md's first table and its
command(s), so the README shows exactly what the benchmark wrote.

    python benchmarks/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def block(md: str) -> str:
    text = (RESULTS / md).read_text()
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = "\n".join(lines[start:end])  # the first table; details stay in X.md
    cmd = re.search(r"Produced by (`[^\n]+`)", text)  # one or more `commands`
    head = f"{cmd.group(1)} → `benchmarks/results/{md}`" if cmd else f"`benchmarks/results/{md}`"
    js = RESULTS / md.replace(".md", ".json")
    when = provenance.describe(*provenance.of_results(js)) if js.exists() else ""
    head += f" ({when}):\n\n" if when else ":\n\n"
    return f"<!-- {md} -->\n{head}{table}\n<!-- /{md} -->"


def refreshed(text: str) -> str:
    """``text`` (README.md) with every result block copied anew from ``benchmarks/results``."""
    for md in sorted(set(re.findall(r"<!-- ([\w.-]+\.md) -->", text))):
        if (RESULTS / md).exists():
            pattern = rf"<!-- {re.escape(md)} -->.*?<!-- /{re.escape(md)} -->"
            text = re.sub(pattern, lambda _m, md=md: block(md), text, flags=re.S)
    return text


def main() -> None:
    readme = ROOT / "README.md"
    readme.write_text(refreshed(readme.read_text()))


if __name__ == "__main__":
    main()
