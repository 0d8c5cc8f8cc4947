"""The emulated Cortex-M CPUs: compiler flags, QEMU board, linker script, SysTick clock.

One record per CPU so the library build, the harness link and the QEMU run cannot disagree.
Memory maps are QEMU 7.2's (``info mtree``): mps2-an386 has 4 MiB SSRAM at 0x0 (code) and 4 MiB
at 0x20000000; mps3-an547 boots Secure with its vector table at 0x10000000 (ITCM, 512 KiB), so
code and constants go to the 2 MiB SRAM at 0x11000000 and data to the 4 MiB ISRAM at 0x31000000.
"""

from __future__ import annotations

import dataclasses

from firmware_gen.errors import FirmwareGenError


@dataclasses.dataclass(frozen=True)
class Cpu:
    key: str  # "m4", "m55": what --on-target takes
    name: str  # gcc -mcpu / report name
    flags: tuple[str, ...]  # arch flags for every C/C++ file and the link
    machine: str  # qemu-system-arm -M
    linker_script: str  # file in firmware_gen/harness/
    systick_hz: int  # QEMU's SysTick processor clock on that board (for the -icount cross-check)
    cores: tuple[str, ...]  # targets.json "core" values this CPU stands for


CPUS: dict[str, Cpu] = {
    "m4": Cpu(
        "m4",
        "cortex-m4",
        ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        "mps2-an386",
        "mps2_an386.ld",
        25_000_000,
        ("cortex-m4", "cortex-m4f"),
    ),
    "m55": Cpu(
        "m55",
        "cortex-m55",
        ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-mfpu=auto"),
        "mps3-an547",
        "mps3_an547.ld",
        32_000_000,
        ("cortex-m55",),
    ),
}
KERNEL_SETS = ("reference", "cmsis-nn")


def parse_list(text: str, known: tuple[str, ...] | list[str], flag: str) -> list[str]:
    """``"m4,m55"`` -> ``["m4", "m55"]``; one-line error naming an unknown value."""
    out: list[str] = []
    for item in (s.strip().lower() for s in text.split(",")):
        if not item:
            continue
        if item == "cortex-m4":
            item = "m4"
        elif item == "cortex-m55":
            item = "m55"
        elif item in ("cmsis_nn", "cmsisnn"):
            item = "cmsis-nn"
        if item not in known:
            raise FirmwareGenError(
                f"{flag}: unknown value {item!r}; choose from {', '.join(known)}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise FirmwareGenError(f"{flag}: give at least one of {', '.join(known)}")
    return out


def cpu(key: str) -> Cpu:
    try:
        return CPUS[key]
    except KeyError:
        raise FirmwareGenError(f"unknown CPU {key!r}; choose from {', '.join(CPUS)}") from None
