"""README.md's bash blocks as a user runs them: find a block by a command in it, run its lines.

Lines run in-process through the same entry points as the console scripts (``tfkws`` ->
``tfkws.cli.main.main``, ``firmware-gen`` -> ``firmware_gen.cli.main``) from the working
directory the test chose, exactly as written: relative paths, default outputs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from conftest import REPO

README = REPO / "README.md"


def bash_blocks(text: str | None = None) -> list[str]:
    """Every bash block of README.md (fences may be indented inside a list item)."""
    text = README.read_text() if text is None else text
    return re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", text, flags=re.S | re.M)


def block_with(needle: str) -> list[str]:
    """The lines (continuations joined, comments dropped) of the one block holding ``needle``."""
    found = [b for b in bash_blocks() if needle in b]
    assert len(found) == 1, f"{len(found)} README bash blocks hold {needle!r}"
    lines = []
    for line in found[0].replace("\\\n", " ").splitlines():
        line = line.split("  #", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def run_line(line: str, cwd: Path) -> int:
    """Run one README command line from ``cwd``; its exit code."""
    import os

    argv = shlex.split(line)
    before = Path.cwd()
    os.chdir(cwd)
    try:
        if argv[0] == "tfkws":
            from tfkws.cli.main import main

            return main(argv[1:])
        if argv[0] == "firmware-gen":
            from firmware_gen.cli import main as fw_main

            return fw_main(argv)
        raise AssertionError(f"not a tfkws or firmware-gen command: {line}")
    finally:
        os.chdir(before)


def run_block(needle: str, cwd: Path) -> list[str]:
    """Every line of the block holding ``needle``, each exiting 0; the lines run."""
    lines = block_with(needle)
    for line in lines:
        assert run_line(line, cwd) == 0, line
    return lines
