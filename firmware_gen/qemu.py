"""Run a harness ELF in ``qemu-system-arm`` and read what it reports.

Output goes through semihosting (``-semihosting-config enable=on,target=native``): the harness
prints ``FG_*`` lines (see ``harness/main.cc``) and TFLM's log. Instructions are counted by a
small TCG plugin (``harness/icount_plugin.c``, built once with the host C compiler and cached)
between the entry of ``fg_invoke_begin`` and of ``fg_invoke_end``. With ``-icount shift=0`` QEMU's
virtual clock advances 1 ns per instruction, so the SysTick (processor clock) also counts
instructions, in units of 1e9 / clock: an independent cross-check of the plugin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from firmware_gen.cpus import Cpu
from firmware_gen.errors import FirmwareGenError
from firmware_gen.tflm_lib import cache_root
from firmware_gen.toolchain import find_toolchain

HARNESS = Path(__file__).resolve().parent / "harness"
PLUGIN_SRC = HARNESS / "icount_plugin.c"
_MISSING_OP = re.compile(r"Didn't find op for (?:builtin|custom) opcode '([^']+)'")


@dataclasses.dataclass
class QemuRun:
    """What one QEMU run printed, parsed."""

    returncode: int
    stdout: str
    alloc_ok: bool | None = None  # None: the harness never got that far
    arena_used: int | None = None
    invokes: list[tuple[bool, int]] = dataclasses.field(default_factory=list)  # (ok, ticks)
    done: int | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    fault: str | None = None
    instructions: list[int] = dataclasses.field(default_factory=list)  # from the plugin
    timed_out: bool = False

    @property
    def log(self) -> list[str]:
        """TFLM's own lines (everything that is not an FG_ marker)."""
        return [ln for ln in self.stdout.splitlines() if ln.strip() and "FG_" not in ln]

    def missing_ops(self) -> list[str]:
        return sorted(set(_MISSING_OP.findall(self.stdout)))

    def problem(self) -> str:
        """One line saying why the run did not succeed."""
        if self.timed_out:
            return "timed out"
        if self.fault:
            return f"CPU fault ({self.fault})"
        if self.errors:
            return self.errors[0]
        log = self.log
        return "; ".join(log[-2:]) if log else f"exit status {self.returncode}, no output"


def parse_output(text: str, returncode: int) -> QemuRun:
    run = QemuRun(returncode=returncode, stdout=text)
    for line in text.splitlines():
        parts = line.strip().split()
        if not parts or not parts[0].startswith("FG_"):
            continue
        tag, rest = parts[0], parts[1:]
        if tag == "FG_ALLOC":
            run.alloc_ok = rest[:1] == ["ok"]
            if run.alloc_ok and len(rest) > 1:
                run.arena_used = int(rest[1])
        elif tag == "FG_INVOKE" and rest:
            run.invokes.append((rest[0] == "ok", int(rest[2]) if len(rest) > 2 else 0))
        elif tag == "FG_DONE" and rest:
            run.done = int(rest[0])
        elif tag == "FG_ERROR":
            run.errors.append(" ".join(rest))
        elif tag == "FG_FAULT":
            run.fault = " ".join(rest)
    return run


def plugin_path() -> Path:
    """The instruction-count plugin, compiled on first use (cache key: its source + compiler)."""
    tc = find_toolchain()
    if tc.host_cc is None:
        raise FirmwareGenError(
            "instruction counting needs a host C compiler (cc/gcc) for the plugin"
        )
    version = subprocess.run([tc.host_cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(PLUGIN_SRC.read_bytes() + version.encode()).hexdigest()[:16]
    out = cache_root() / f"icount-plugin-{key}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
        os.close(fd)
        try:
            cmd = [tc.host_cc, "-O2", "-shared", "-fPIC", "-Wall", str(PLUGIN_SRC), "-o", tmp]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise FirmwareGenError(
                    f"{PLUGIN_SRC.name}: does not compile: {res.stderr.strip().splitlines()[0]}"
                )
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def run_elf(
    elf: Path,
    cpu: Cpu,
    args: list[str],
    cwd: Path,
    *,
    timeout: float = 120.0,
    count_between: tuple[int, int] | None = None,
    icount: bool = False,
) -> QemuRun:
    """Boot ``elf`` on ``cpu``'s board with semihosting ``args`` (no commas or spaces) in ``cwd``.

    ``count_between``: (begin, end) marker addresses for the instruction-count plugin.
    ``icount``: run with ``-icount shift=0`` (SysTick then counts instructions).
    """
    tc = find_toolchain()
    elf, cwd = Path(elf).absolute(), Path(cwd).absolute()  # QEMU runs in cwd; plugin writes there
    for a in args:
        if "," in a or " " in a:
            raise FirmwareGenError(f"QEMU semihosting argument {a!r} may not contain , or spaces")
    semi = ",".join(["enable=on", "target=native", "arg=harness", *(f"arg={a}" for a in args)])
    cmd = [
        tc.qemu,
        "-M",
        cpu.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        semi,
        "-kernel",
        str(elf),
    ]
    if icount:
        cmd += ["-icount", "shift=0"]
    counts = None
    if count_between is not None:
        counts = cwd / "icount.txt"
        counts.unlink(missing_ok=True)
        begin, end = count_between
        cmd += ["-plugin", f"{plugin_path()},begin={begin:#x},end={end:#x},out={counts}"]
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or ""
        run = parse_output(out, -1)
        run.timed_out = True
        return run
    run = parse_output(res.stdout + res.stderr, res.returncode)
    if counts is not None:
        if not counts.exists():
            raise FirmwareGenError(
                f"QEMU instruction-count plugin wrote nothing ({res.stderr.strip()[:200]})"
            )
        run.instructions = [
            int(ln.split()[1]) for ln in counts.read_text().splitlines() if ln.startswith("invoke ")
        ]
    return run
