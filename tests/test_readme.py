"""The README's commands: the first one run as written, every one's flags checked.

The others run as written in tests/test_readme_walkthrough.py (and the zoo's streaming block in
tests/test_zoo.py); the multi-host ``TF_CONFIG`` example needs two hosts: tests/test_multiworker.py
runs the same command shape with two local workers.

``tfkws demo`` runs from a fresh empty folder with no ``--out`` (a relative default output once
broke its firmware step), as a subprocess through the console script, in the fast mode the demo
reads from ``TFKWS_DEMO_FAST`` (tiny dataset, 2 epochs) so the command itself is unchanged. Every
``tfkws`` / ``firmware-gen`` line of a bash block is parsed with the command's own flags, so a
README command with a wrong flag or subcommand fails here.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA
from helpers import run_command

README = REPO / "README.md"
STEPS = (
    "=== 1/6 synthesising keyword dataset with espeak-ng",
    "=== 2/6 training",
    "=== 3/6 folding + int8 export",
    "=== 4/6 verifying in TFLM vs LiteRT vs float",
    "=== 5/6 evaluating int8 in TFLM",
    "=== 6/6 firmware C files, arena report and on-target figures (Cortex-M4 in QEMU)",
)


def readme_commands() -> list[list[str]]:
    """Every ``tfkws ...`` / ``firmware-gen ...`` command of README.md's bash blocks, as argv."""
    # fences may be indented (a block inside a list item)
    blocks = re.findall(r"^[ \t]*```bash\n(.*?)^[ \t]*```", README.read_text(), flags=re.S | re.M)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0]
            for part in re.split(r"&&|\|\||;", line):
                argv = shlex.split(part)
                if argv and argv[0] in ("tfkws", "firmware-gen"):
                    commands.append(argv)
    return commands


def _cli_command() -> list[str]:
    """The ``tfkws`` console script the README runs (``python -m`` where it is not on PATH)."""
    script = shutil.which("tfkws")
    return [script] if script else [sys.executable, "-m", "tfkws.cli.main"]


def _tflm_root() -> str | None:
    from firmware_gen.toolchain import default_tflm_root

    if os.environ.get("TFLM_ROOT"):
        return os.environ["TFLM_ROOT"]
    root = default_tflm_root()
    shared = SHARED_DATA.parent / "tflm"  # a worktree's ../shared may be further up
    if root is None and (shared / "tensorflow").is_dir():
        root = shared
    return None if root is None else str(root)


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the README's second command (the install + test line)."""
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    test_line = block.splitlines()[1].split("#", 1)[0].strip()
    assert "pytest" in test_line
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_line in ci, test_line


def test_readme_first_command_is_tfkws_demo() -> None:
    first = readme_commands()[0]
    assert first == ["tfkws", "demo"]


@pytest.mark.slow
def test_tfkws_demo_as_the_readme_writes_it(tmp_path: Path) -> None:
    from firmware_gen.toolchain import available

    env = dict(os.environ)
    env["TFKWS_DEMO_FAST"] = "1"
    tflm = _tflm_root()
    if tflm:
        env["TFLM_ROOT"] = tflm
    on_target = available() is None and tflm is not None
    out = run_command([*_cli_command(), "demo"], cwd=tmp_path, env=env, timeout=1800)
    positions = [out.find(step) for step in STEPS]
    assert all(p >= 0 for p in positions), out[-4000:]
    assert positions == sorted(positions)
    demo = tmp_path / "tfkws_demo"
    fw = demo / "firmware"
    for name in ("kws_model_data.cc", "kws_model_data.h", "kws_op_resolver.h", "kws_report.json"):
        assert (fw / name).stat().st_size > 0, name
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["out"] == str(demo)
    if on_target:
        assert summary["on_target"] and summary["on_target"][0]["cpu"] == "cortex-m4", out[-4000:]
        assert summary["on_target"][0]["outputs_bit_exact"]
    else:
        assert "on-target measurement skipped" in out


def test_readme_bash_blocks_hold_the_pipeline() -> None:
    """The parser below finds the README's commands (a parser that finds none checks nothing)."""
    seen = {(c[0], c[1]) for c in readme_commands() if len(c) > 1}
    for cmd in ("demo", "train", "export", "verify", "eval", "slim", "zoo"):
        assert ("tfkws", cmd) in seen, cmd
    assert any(c[0] == "firmware-gen" for c in readme_commands())


def _synopsis(argv: list[str]) -> bool:
    """A usage line (``[--name NAME]``, ``A|B``, ``...``) rather than a command to run."""
    return any(a.startswith("[") or a.endswith("]") or a == "..." or "|" in a for a in argv)


def _flag_names(argv: list[str]) -> list[str]:
    return [a.strip("[]").split("=", 1)[0][2:] for a in argv if a.strip("[").startswith("--")]


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_readme_command_parses(argv: list[str]) -> None:
    """Subcommand and flags as ``tfkws`` / ``firmware-gen`` parse them, without running."""
    from absl import flags

    if argv[0] == "firmware-gen":
        import firmware_gen.cli  # its own flag registry, FLAGS

        fv = copy.deepcopy(firmware_gen.cli.FLAGS)
        args = argv[1:]
    else:
        from tfkws.cli import common
        from tfkws.cli.main import COMMANDS, command_module

        assert argv[1] in COMMANDS, f"no tfkws command {argv[1]!r}"
        module = importlib.import_module(command_module(argv[1]))
        fv = flags.FlagValues()
        module.define_flags(fv)
        common.define_verbose_flag(fv)
        args = argv[2:]
    for name in _flag_names(args):
        assert name in fv or (name.startswith("no") and name[2:] in fv), f"no flag --{name}"
    if _synopsis(args):
        return
    positional = fv([argv[0], *args])[1:]
    if argv[0] == "firmware-gen":
        assert len(positional) == 1, positional
    elif argv[1] == "slim":
        from tfkws.cli.slim_cmd import ACTIONS

        assert len(positional) == 1 and positional[0] in ACTIONS, positional
    elif argv[1] == "zoo":
        from tfkws.cli.zoo_cmd import ACTIONS
        from tfkws.zoo.catalog import get_model

        assert positional and positional[0] in ACTIONS, positional
        if positional[0] == "get":
            assert len(positional) == 2 and get_model(positional[1]), positional
    else:
        assert not positional, positional
    if "params" in fv and fv.params:
        from tfkws.cli.common import parse_params
        from tfkws.models.catalog import resolve_params

        resolve_params(fv.model, parse_params(fv.params))
