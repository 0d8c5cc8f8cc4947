"""Every benchmark table, its command and the commit it measured; re-run all or one of them.

    python benchmarks/run_all.py                 # list the tables (command, commit)
    python benchmarks/run_all.py --stale         # which tables are older than the code now
    python benchmarks/run_all.py demo arena      # re-run those tables' recorded commands
    python benchmarks/run_all.py --all           # re-run every table (hours on 2 CPU cores)
    python benchmarks/run_all.py --readme        # rewrite benchmarks/README.md, README's blocks

A table is ``benchmarks/results/NAME.{json,md}``; its JSON holds the command(s) that wrote it
(``command``; ``frontend_command`` for a second part) and, from this script on, the commit the
code was at (``commit``). Tables written before that say which commit landed them instead.
Commands run from the repository root, as recorded. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import provenance  # noqa: E402
import update_readme  # noqa: E402

REPO = provenance.REPO
RESULTS = REPO / "benchmarks" / "results"
INDEX = REPO / "benchmarks" / "README.md"


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    title: str
    commands: tuple[str, ...]
    commit: str | None
    measured: bool  # True: ``commit`` is the code it ran at; False: the commit that landed it
    dirty: bool

    @property
    def script(self) -> str:
        m = re.search(r"python (benchmarks/\w+\.py)", self.commands[0]) if self.commands else None
        return m.group(1) if m else ""


def split_commands(text: str) -> list[str]:
    """'a; b' as written by benchmarks that merged several runs into one table."""
    return [c.strip() for c in re.split(r";\s+(?=(?:\w+=\S+\s+)*python )", text) if c.strip()]


def recorded_commands(md_text: str, doc: dict) -> list[str]:
    """Every command of a table: its ``Produced by`` lines (all the runs merged into it), else
    the JSON's ``command`` / ``frontend_command``."""
    found = []
    for line in md_text.splitlines():
        if line.startswith("Produced by "):
            sentence = line.split(" on ")[0] if " on " in line.split("`")[-1] else line
            found += [c for c in re.findall(r"`([^`]+)`", sentence) if "python " in c]
    if not found:
        found = split_commands(doc.get("command", ""))
        found += split_commands(doc.get("frontend_command", ""))
    return list(dict.fromkeys(found))


def tables() -> list[Table]:
    out = []
    for js in sorted(RESULTS.glob("*.json")):
        doc = json.loads(js.read_text())
        md = js.with_suffix(".md")
        text = md.read_text() if md.exists() else ""
        title = text.splitlines()[0].lstrip("# ").strip() if text else js.stem
        commands = recorded_commands(text, doc)
        commit, measured, dirty = provenance.of_results(js)
        out.append(Table(js.stem, title, tuple(commands), commit, measured, dirty))
    return out


def provenance_line(t: Table) -> str:
    return provenance.describe(t.commit, t.measured, t.dirty)


def index_markdown() -> str:
    lines = [
        "# Benchmarks",
        "",
        "Every table under `results/`, the command(s) that wrote it (run from the repository",
        "root) and the code it measured. `python benchmarks/run_all.py --stale` says which tables",
        "are older than the code now; `python benchmarks/run_all.py NAME` re-runs one table and",
        "`--all` every table (training benchmarks take hours on 2 CPU cores). The README's result",
        "blocks are copies of these tables (`python benchmarks/run_all.py --readme`). Run folders",
        "go to `benchmarks/runs/` (git-ignored).",
        "",
        "| table | what | script | figures from |",
        "|---|---|---|---|",
    ]
    tabs = tables()
    for t in tabs:
        where = f"`{t.commit}`" if t.commit else "?"
        if t.commit and not t.measured:
            where += " (landed)"
        lines.append(f"| [{t.name}](results/{t.name}.md) | {t.title} | `{t.script}` | {where} |")
    for t in tabs:
        lines += ["", f"## {t.name}: {t.title}", "", provenance_line(t) + ".", "", "```bash"]
        lines += list(t.commands) or ["# no command recorded"]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def write_index() -> None:
    INDEX.write_text(index_markdown())
    update_readme.main()


def stale_report() -> int:
    """Print each table against the code now; exit 1 when any is older than the code."""
    old = 0
    for t in tables():
        changed = provenance.code_changed_since(t.commit, t.script) if t.commit else ["?"]
        if changed:
            old += 1
            print(f"{t.name}: older than the code ({len(changed)} files changed since {t.commit})")
        else:
            print(f"{t.name}: current ({t.commit})")
    return 1 if old else 0


def run(names: list[str], dry_run: bool) -> int:
    known = {t.name: t for t in tables()}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"run_all.py: error: no table {', '.join(unknown)} in {RESULTS}", file=sys.stderr)
        return 2
    for name in names:
        for cmd in known[name].commands:
            print(f"[{name}] {cmd}", flush=True)
            if dry_run:
                continue
            env_part, argv = _split_env(cmd)
            done = subprocess.run(argv, cwd=REPO, env=env_part)
            if done.returncode:
                print(f"run_all.py: {name}: `{cmd}` exited {done.returncode}", file=sys.stderr)
                return done.returncode
    if not dry_run:
        write_index()
    return 0


def _split_env(cmd: str) -> tuple[dict[str, str] | None, list[str]]:
    import os

    argv = shlex.split(cmd)
    env = {}
    while argv and re.fullmatch(r"\w+=.*", argv[0]):
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    argv[0] = sys.executable if argv and argv[0] == "python" else argv[0]
    return (os.environ | env if env else None), argv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="tables to re-run (results/NAME.json)")
    p.add_argument("--all", action="store_true", help="re-run every table")
    p.add_argument("--dry_run", action="store_true", help="print the commands only")
    p.add_argument("--stale", action="store_true", help="which tables are older than the code")
    p.add_argument("--readme", action="store_true", help="rewrite benchmarks/README.md + blocks")
    a = p.parse_args(argv)
    if a.stale:
        return stale_report()
    if a.readme:
        write_index()
        return 0
    names = [t.name for t in tables()] if a.all else a.names
    if not names:
        for t in tables():
            print(f"{t.name:<20} {provenance_line(t)}")
            for c in t.commands:
                print(f"    {c}")
        return 0
    return run(names, a.dry_run)


if __name__ == "__main__":
    sys.exit(main())
