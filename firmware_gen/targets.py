"""Microcontroller limits the report checks the model against: packaged parts, user files, flags.

A target is ``{"name", "core", "sram_bytes", "flash_bytes", "clock_hz", "note"}``. Packaged targets
live in ``targets.json``; a user file has the same layout (``{"targets": {key: target}}``) and its
keys may shadow packaged ones; ``--ram/--flash`` make a target named ``custom``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from firmware_gen.errors import FirmwareGenError

HERE = Path(__file__).resolve().parent
REQUIRED = ("sram_bytes", "flash_bytes")


def _validate(key: str, t: object, source: str) -> dict:
    if not isinstance(t, dict):
        raise FirmwareGenError(f"{source}: target {key!r} must be an object")
    for field in REQUIRED:
        v = t.get(field)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise FirmwareGenError(f"{source}: target {key!r} needs a positive integer {field}")
    clock = t.get("clock_hz", 0)
    if not isinstance(clock, int) or isinstance(clock, bool) or clock < 0:
        raise FirmwareGenError(f"{source}: target {key!r}: clock_hz must be an integer >= 0")
    return {
        "key": key,
        "name": str(t.get("name", key)),
        "core": str(t.get("core", "")),
        "sram_bytes": t["sram_bytes"],
        "flash_bytes": t["flash_bytes"],
        "clock_hz": clock,
        "note": str(t.get("note", "")),
    }


def _load(path: Path, source: str) -> dict[str, dict]:
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise FirmwareGenError(f"{source}: cannot read targets file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FirmwareGenError(f"{source}: targets file is not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("targets"), dict):
        raise FirmwareGenError(f'{source}: targets file needs a top-level "targets" object')
    return {k.lower(): _validate(k.lower(), v, source) for k, v in doc["targets"].items()}


@functools.cache
def builtin_targets() -> dict[str, dict]:
    """The packaged parts and boards, by lower-case key."""
    return _load(HERE / "targets.json", "firmware_gen/targets.json")


def resolve_targets(
    names: list[str] | tuple[str, ...] = (),
    targets_file: str | Path | None = None,
    ram: int | None = None,
    flash: int | None = None,
) -> list[dict]:
    """The targets to check, in the order given; ``custom`` last when ``ram``/``flash`` are set.

    With a ``targets_file`` and no ``names``, every target of that file is checked.
    """
    known = dict(builtin_targets())
    if targets_file is not None:
        user = _load(Path(targets_file), str(targets_file))
        known.update(user)
        if not names:
            names = sorted(user)
    out = []
    for name in names:
        key = name.strip().lower()
        if key not in known:
            raise FirmwareGenError(f"unknown target {name!r}; known: {', '.join(sorted(known))}")
        if all(t["key"] != key for t in out):
            out.append(known[key])
    if ram is not None or flash is not None:
        if ram is None or flash is None:
            raise FirmwareGenError("--ram and --flash go together (give both limits)")
        out.append(
            _validate(
                "custom",
                {"name": "custom limits", "sram_bytes": ram, "flash_bytes": flash},
                "--ram/--flash",
            )
        )
    return out
