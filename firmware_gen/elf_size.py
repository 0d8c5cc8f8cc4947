"""Flash and static RAM of a linked harness ELF, split into model, TFLM, harness and C library.

``arm-none-eabi-size -A`` gives the output sections (the totals); the linker map
(``-Wl,-Map``) says which input file every kept input section came from after
``--gc-sections``, so TFLM's share is exactly the code and data the model's ops pull in.
Attribution: the model array's object -> model; ``libtflm*.a`` members and the op-resolver
template code the harness instantiates (``MicroMutableOpResolver``, ``RegisterOps``) -> TFLM;
the harness's own objects -> harness; newlib, libstdc++, libgcc -> C library. Alignment padding
is counted in the totals only.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".data")
RAM_SECTIONS = (".data", ".bss")
_INPUT = re.compile(r"^ (\S+)(?:\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.+))?$")
_CONT = re.compile(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(.+)$")
_OUTPUT = re.compile(r"^(\.\S+)")
RESOLVER_SYMBOLS = ("MicroMutableOpResolver", "RegisterOps")


def section_list(size_tool: str, path: Path) -> list[tuple[str, int]]:
    """(section, bytes) in ``size -A`` order; an object file may repeat a name (COMDAT groups)."""
    out = subprocess.run([size_tool, "-A", str(path)], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(".") and parts[1].isdigit():
            rows.append((parts[0], int(parts[1])))
    return rows


def section_sizes(size_tool: str, elf: Path) -> dict[str, int]:
    """{section: bytes} of a linked ELF (its output section names are unique)."""
    return dict(section_list(size_tool, elf))


def _owner(section: str, origin: str, model_object: str) -> str:
    name = Path(origin.split("(")[0]).name
    if name == model_object:
        return "model"
    if re.match(r"libtflm.*\.a$", name):
        return "tflm"
    if any(s in section for s in RESOLVER_SYMBOLS):
        return "tflm"
    if name.endswith(".o"):
        return "harness"
    return "c_library"


def attribute(map_text: str, model_object: str, sizes: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{output section: {owner: bytes}}`` from a GNU ld map file and the real section sizes.

    Mergeable string sections (``.rodata*.str1.*``) appear in the map at their size before the
    linker removed duplicate strings; the bytes they really take (section size minus everything
    else, padding included) are shared out pro rata.
    """
    plain: dict[str, dict[str, int]] = {}
    strings: dict[str, dict[str, int]] = {}
    fill: dict[str, int] = {}
    body = map_text.split("Linker script and memory map", 1)[-1]
    current = None
    pending = None  # an input section whose address/size/file is on the next line

    def add(section: str, size: int, origin: str) -> None:
        table = strings if ".str" in section else plain
        owner = _owner(section, origin, model_object)
        table.setdefault(current, {}).setdefault(owner, 0)
        table[current][owner] += size

    for line in body.splitlines():
        m = _OUTPUT.match(line)
        if m:
            current, pending = m.group(1), None
            continue
        if current is None:
            continue
        if line.startswith(" *fill*"):
            f = _CONT.match(line[len(" *fill*") :] + " fill")
            if f:
                fill[current] = fill.get(current, 0) + int(f.group(2), 16)
            continue
        if pending is not None:
            c = _CONT.match(line)
            pending, name = None, pending
            if c:
                add(name, int(c.group(2), 16), c.group(3).strip())
                continue
        m = _INPUT.match(line)
        if m and not m.group(1).startswith("*"):
            if m.group(2) is None:
                pending = m.group(1)
            else:
                add(m.group(1), int(m.group(3), 16), m.group(4).strip())
    out: dict[str, dict[str, int]] = {}
    for section in set(plain) | set(strings):
        owners = dict(plain.get(section, {}))
        merged = strings.get(section, {})
        listed = sum(merged.values())
        if listed:
            real = sizes.get(section, 0) - sum(owners.values()) - fill.get(section, 0)
            real = max(0, min(real, listed))
            for owner, size in merged.items():
                owners[owner] = owners.get(owner, 0) + round(size * real / listed)
        out[section] = owners
    return out


def flash_report(size_tool: str, elf: Path, map_file: Path, model_object: str) -> dict:
    """Flash (code + constants + .data image) and static RAM, by owner, in bytes."""
    sizes = section_sizes(size_tool, elf)
    parts = attribute(map_file.read_text(errors="replace"), model_object, sizes)
    owners = ("model", "tflm", "harness", "c_library")

    def total(sections: tuple[str, ...], owner: str) -> int:
        return sum(parts.get(s, {}).get(owner, 0) for s in sections)

    flash_total = sum(sizes.get(s, 0) for s in FLASH_SECTIONS)
    return {
        "flash_bytes": {
            "model": total(FLASH_SECTIONS, "model"),
            "tflm": total(FLASH_SECTIONS, "tflm"),
            "harness": total(FLASH_SECTIONS, "harness"),
            "c_library": total(FLASH_SECTIONS, "c_library"),
            "total": flash_total,
        },
        "tflm_code_bytes": total((".text",), "tflm"),
        "static_ram_bytes": {o: total(RAM_SECTIONS, o) for o in owners if o != "model"},
        "sections": {s: sizes[s] for s in (*FLASH_SECTIONS, ".bss") if s in sizes},
    }
