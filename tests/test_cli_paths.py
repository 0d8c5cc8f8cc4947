"""Every path flag of every ``tfkws`` command is made absolute once, at the command line.

A relative ``--out`` once reached firmware_gen, which compiled from another folder and lost it;
resolving at the edge keeps every stage independent of the working directory.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from absl import flags

from tfkws.cli import common
from tfkws.cli.main import COMMANDS, command_module

PATH_FLAGS = {
    "synth": {"out", "noise_dir"},
    "train": {"data", "noise_dir", "out", "teacher", "cache_dir"},
    "qat": {"run", "out", "data", "teacher"},
    "export": {"run", "out", "data", "firmware_dir"},
    "verify": {"model", "data", "json"},
    "eval": {"model", "data", "json", "plot"},
    "detect": {"model", "audio", "json", "detector_spec"},
    "stream-eval": {"model", "out", "data", "english", "noise_dir", "audio", "labels", "fa_audio"},
    "demo": {"out", "real_data"},
    "models": set(),
    "slim": {"run", "out", "data", "out_dir", "teacher"},
    "zoo": {"out"},
}


def _flags(command: str) -> flags.FlagValues:
    fv = flags.FlagValues()
    importlib.import_module(command_module(command)).define_flags(fv)
    common.define_verbose_flag(fv)
    return fv


def test_every_command_is_listed() -> None:
    assert set(PATH_FLAGS) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(PATH_FLAGS))
def test_path_flags_are_declared_as_paths(command: str) -> None:
    fv = _flags(command)
    declared = {name for name in fv if isinstance(fv[name], common.PathFlag)}
    assert declared == PATH_FLAGS[command]


@pytest.mark.parametrize("command", sorted(c for c in PATH_FLAGS if PATH_FLAGS[c]))
def test_relative_paths_resolved_against_the_working_directory(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fv = _flags(command)
    names = sorted(PATH_FLAGS[command])
    args = [f"--{n}=a/{n},b" if fv[n].is_list else f"--{n}=../x/{n}" for n in names]
    required = [f"--{n}=1" for n in ("width",) if command == "slim"]  # not a path
    fv([command, *args, *required])
    common.resolve_path_flags(fv)
    for n in names:
        if fv[n].is_list:
            assert fv[n].value == [str(tmp_path / "a" / n), str(tmp_path / "b")]
        else:
            assert fv[n].value == str(tmp_path.parent / "x" / n)


def test_unset_and_default_paths() -> None:
    """Unset optional paths stay None; a default (the demo's ``tfkws_demo``) is resolved too."""
    fv = _flags("demo")
    fv(["demo"])
    common.resolve_path_flags(fv)
    assert fv.real_data is None
    assert fv.out == str(Path.cwd() / "tfkws_demo")
