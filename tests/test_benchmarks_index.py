"""Every benchmark table is listed with its command and commit, and the READMEs show the tables
as the results files hold them (``python benchmarks/run_all.py --readme`` regenerates both)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import run_all  # noqa: E402
import update_readme  # noqa: E402


def _in_git() -> bool:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse"], capture_output=True)
    return done.returncode == 0


needs_git = pytest.mark.skipif(not _in_git(), reason="not a git checkout (commits unknown)")


def test_every_table_has_a_command_naming_an_existing_script() -> None:
    tables = run_all.tables()
    assert {t.name for t in tables} == {p.stem for p in (BENCH / "results").glob("*.json")}
    for t in tables:
        assert t.commands, f"{t.name}: no command recorded"
        for cmd in t.commands:
            script = re.search(r"python (benchmarks/\w+\.py)", cmd)
            assert script and (REPO / script.group(1)).exists(), f"{t.name}: {cmd}"


@needs_git
def test_every_table_names_a_commit() -> None:
    for t in run_all.tables():
        assert t.commit and re.fullmatch(r"[0-9a-f]{7,40}", t.commit), t.name


@needs_git
def test_every_table_commit_is_in_the_history() -> None:
    """A commit later amended away resolves in the clone that made it (and in a local
    ``git clone``, which copies unreachable objects too) but not in one fetched from the remote."""
    for t in run_all.tables():
        done = subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "--is-ancestor", t.commit, "HEAD"],
            capture_output=True,
        )
        assert done.returncode == 0, f"{t.name}: commit {t.commit} is not an ancestor of HEAD"


@needs_git
def test_benchmarks_readme_is_current() -> None:
    assert (BENCH / "README.md").read_text() == run_all.index_markdown(), (
        "benchmarks/README.md is stale: python benchmarks/run_all.py --readme"
    )


@needs_git
def test_readme_result_blocks_are_the_results_tables() -> None:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- ([\w.-]+\.md) -->", text)
    assert blocks, "README.md has no result blocks"
    for md in blocks:
        assert (BENCH / "results" / md).exists(), f"README block names missing results/{md}"
    assert text == update_readme.refreshed(text), (
        "README.md's result blocks are stale: python benchmarks/run_all.py --readme"
    )


def test_split_commands_keeps_quoted_json_whole() -> None:
    cmd = (
        "python benchmarks/a.py --x 1; python benchmarks/a.py --params '{\"c\": [1, 2]}'; "
        "K=v python benchmarks/b.py"
    )
    assert run_all.split_commands(cmd) == [
        "python benchmarks/a.py --x 1",
        "python benchmarks/a.py --params '{\"c\": [1, 2]}'",
        "K=v python benchmarks/b.py",
    ]


def test_run_all_dry_run_and_unknown_table(capsys: pytest.CaptureFixture) -> None:
    name = run_all.tables()[0].name
    assert run_all.main([name, "--dry_run"]) == 0
    assert f"[{name}] python benchmarks/" in capsys.readouterr().out
    assert run_all.main(["no_such_table"]) == 2
    assert "no table no_such_table" in capsys.readouterr().err
