"""Which code a benchmark result came from: the git commit it ran at (no TensorFlow needed).

Every results file records ``commit`` (and ``dirty`` when the work tree had uncommitted changes
under ``tfkws/``, ``firmware_gen/`` or ``benchmarks/``), so a table can say which code it measured
and ``run_all.py --stale`` can tell when the code has moved on since.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ("tfkws", "firmware_gen", "benchmarks/*.py", "pyproject.toml")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def _now() -> dict[str, object]:
    sha = _git("rev-parse", "--short=7", "HEAD")
    if not sha:
        return {}
    changed = _git("status", "--porcelain", "--", *CODE)
    return {"commit": sha, "dirty": bool(changed)}


_AT_START = _now()  # this module is imported as a benchmark starts: the code it loaded


def current() -> dict[str, object]:
    """``{"commit": short sha, "dirty": bool}`` of the code running now ({} outside git): the
    work tree as this process started, not as its results are written (an hour-long run once
    recorded the commit made while it ran)."""
    return dict(_AT_START)


def landed(path: Path) -> str | None:
    """The commit that last wrote ``path`` (for results recorded before ``commit`` was kept)."""
    return _git("log", "-1", "--format=%h", "--abbrev=7", "--", str(path)) or None


def commit_date(sha: str) -> str | None:
    return _git("show", "-s", "--format=%ad", "--date=short", sha) or None


def code_changed_since(sha: str, script: str) -> list[str]:
    """Files of the measured code (tfkws/, firmware_gen/, the script) changed since ``sha``."""
    out = _git(
        "diff", "--name-only", sha, "HEAD", "--", "tfkws", "firmware_gen", script,
        "benchmarks/common.py", "pyproject.toml",
    )  # fmt: skip
    return out.splitlines() if out else []


def of_results(js: Path) -> tuple[str | None, bool, bool]:
    """(commit, measured, dirty) of a results JSON: its own commit, else the one that landed it.

    ``measured`` is False for tables written before results kept their commit.
    """
    import json

    doc = json.loads(js.read_text())
    if doc.get("commit"):
        return doc["commit"], True, bool(doc.get("dirty"))
    rel = js.resolve().relative_to(REPO) if js.resolve().is_relative_to(REPO) else js
    return landed(rel), False, False


def describe(commit: str | None, measured: bool, dirty: bool) -> str:
    """One line for a table: which code its figures come from."""
    if not commit:
        return "commit unknown (not in git)"
    date = commit_date(commit) or "?"
    if measured:
        extra = " plus uncommitted changes" if dirty else ""
        return f"measured at commit `{commit}`{extra} ({date})"
    return (
        f"recorded before results kept their commit: landed in `{commit}` ({date}); the "
        "figures are from that commit's code or older"
    )
