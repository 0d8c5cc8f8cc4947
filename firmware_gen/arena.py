"""The exact tensor arena a model needs, measured in TFLM; a 32-bit estimate; a recommendation.

Measured: the smallest arena (a multiple of 16 bytes, TFLM's arena alignment) with which the TFLM
Python interpreter allocates the model and runs ``Invoke()``, found by bisection; then checked:
that size succeeds and 16 bytes less fails, both in a fresh process. The RecordingMicroAllocator's
figures (head = planned activations and scratch, tail = persistent structures) are reported beside
it; their total can be below the minimum because initialisation makes temporary allocations.

Estimated: the host is 64-bit, a Cortex-M is 32-bit, and four persistent TFLM structures hold
pointers. Their sizes were measured by compiling TFLM's headers (``-DTF_LITE_STATIC_MEMORY``) with
``g++`` on x86-64 and ``arm-none-eabi-g++ -mcpu=cortex-m4`` (see ``STRUCT_SIZES``); the estimate is
the host minimum minus (64-bit - 32-bit size) x the recorded count of each. Kernel op data and
scratch buffers are left at their host size, and CMSIS-NN kernels request scratch the reference
kernels do not (seen up to +13 % on Cortex-M55), hence the margin on the recommended size.

All TFLM work runs in a child process (``firmware_gen.probe``): nothing can crash the caller.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from firmware_gen.errors import FirmwareGenError

ALIGN = 16
MAX_ARENA = 64 * 1024 * 1024
REQUEST_TIMEOUT_S = 120.0
DEFAULT_MARGIN_PCT = 20.0

# sizeof() measured from TFLM 90b983c headers: x86-64 g++ 12.2 vs arm-none-eabi-g++ 12.2.1
# -mcpu=cortex-m4, both with -DTF_LITE_STATIC_MEMORY as firmware builds use.
STRUCT_SIZES = {
    # recording category -> (struct, bytes on 64-bit host, bytes on 32-bit Cortex-M)
    "TfLiteEvalTensor data": ("TfLiteEvalTensor", 24, 12),
    "Persistent TfLiteTensor data": ("TfLiteTensor", 64, 32),
    "Persistent TfLiteTensor quantization data": ("TfLiteAffineQuantization", 24, 12),
    "NodeAndRegistration struct": ("tflite::NodeAndRegistration", 64, 32),
}


def round_up(n: float, align: int = ALIGN) -> int:
    n = int(-(-n // 1))
    return -(-n // align) * align


def bisect_min(
    fits: Callable[[int], bool], known_fit: int, guess: int | None = None
) -> tuple[int, int]:
    """(smallest multiple of ``ALIGN`` for which ``fits`` holds, number of ``fits`` calls).

    The one arena search, for the TFLM Python interpreter here and for QEMU in ``on_target``.
    ``known_fit`` (a multiple of ``ALIGN``) must already be known to fit; it is not probed again.
    0 is assumed to fail. ``guess``: a first probe (e.g. TFLM's own arena-used figure) that
    usually leaves a narrow interval. Assumes ``fits`` is monotone in the size.
    """
    lo, hi = 0, known_fit  # lo: known (or assumed, 0) to fail; hi: known to fit
    probes = 0
    first = round_up(guess) if guess is not None else 0
    if 0 < first < hi:
        probes += 1
        if fits(first):
            hi = first
        else:
            lo = first
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        probes += 1
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi, probes


class _Crashed(Exception):
    pass


class Prober:
    """A ``firmware_gen.probe`` child process for one model, restarted if TFLM crashes it."""

    def __init__(self, model: bytes):
        self._dir = tempfile.TemporaryDirectory(prefix="firmware_gen_probe_")
        self._path = Path(self._dir.name) / "model.tflite"
        self._path.write_bytes(model)
        self._proc: subprocess.Popen | None = None
        self.requests = 0
        self.crashes = 0

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        self._dir.cleanup()

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_gen.probe", str(self._path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        return self._proc

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    f.close()
            self._proc = None

    def request(self, line: str) -> str:
        """Send one request, return the answer line; raise ``_Crashed`` if the child died."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        self.requests += 1
        try:
            proc.stdin.write((line + "\n").encode())
            proc.stdin.flush()
        except BrokenPipeError:
            self._stop()
            self.crashes += 1
            raise _Crashed() from None
        buf = b""
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not buf.endswith(b"\n"):
                if not sel.select(REQUEST_TIMEOUT_S):
                    self._stop()
                    raise FirmwareGenError(
                        f"TFLM did not answer within {REQUEST_TIMEOUT_S:.0f} s ({line})"
                    )
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._stop()
                    self.crashes += 1
                    raise _Crashed()
                buf += chunk
        return buf.decode("utf-8", "replace").strip()

    def try_arena(self, size: int) -> tuple[bool, str]:
        """(success, reason) for one arena size; a crash counts as a failure."""
        try:
            answer = self.request(f"try {size}")
        except _Crashed:
            return False, "crashed"
        return answer == "ok", answer.removeprefix("fail ").strip()

    def run_file(self, size: int, inputs: Path, outputs: Path) -> int:
        """Invoke once per input record of ``inputs`` (see ``firmware_gen.probe``); count."""
        for p in (inputs, outputs):
            if " " in str(p):
                raise FirmwareGenError(f"{p}: probe file paths may not contain spaces")
        try:
            answer = self.request(f"run {size} {inputs} {outputs}")
        except _Crashed:
            raise FirmwareGenError("the TFLM Python interpreter crashed on the inputs") from None
        if not answer.startswith("ok "):
            raise FirmwareGenError(f"the TFLM Python interpreter failed on the inputs: {answer}")
        return int(answer[3:])

    def record(self, size: int) -> list[str]:
        answer = self.request(f"record {size}")
        if not answer.startswith("record "):
            raise FirmwareGenError(f"TFLM recording failed at {size} bytes: {answer}")
        return json.loads(answer[len("record ") :])


@dataclasses.dataclass(frozen=True)
class ArenaResult:
    """Measured minimum, recording figures, 32-bit estimate and recommendation (bytes)."""

    min_bytes: int
    below_min_fails: bool
    probes: int
    recording: dict
    estimate_32bit_bytes: int
    estimate_32bit_savings: dict
    margin_pct: float
    recommended_bytes: int

    def to_dict(self) -> dict:
        return {
            "host_min_bytes": self.min_bytes,
            "search": {
                "granularity_bytes": ALIGN,
                "min_minus_16_fails": self.below_min_fails,
                "probes": self.probes,
                "max_bytes": MAX_ARENA,
            },
            "recording": self.recording,
            "estimate_32bit_bytes": self.estimate_32bit_bytes,
            "estimate_32bit_savings": self.estimate_32bit_savings,
            "margin_pct": self.margin_pct,
            "recommended_bytes": self.recommended_bytes,
        }


_TOTAL = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_CATEGORY = re.compile(
    r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+) "
)


def parse_recording(lines: list[str]) -> dict:
    """RecordingMicroAllocator's printout -> ``{total, head, tail, categories{name: {...}}}``."""
    out: dict = {"total_bytes": 0, "head_bytes": 0, "tail_bytes": 0, "categories": {}}
    for ln in lines:
        if m := _TOTAL.search(ln):
            out[f"{m.group(1)}_bytes"] = int(m.group(2))
        elif m := _CATEGORY.search(ln):
            out["categories"][m.group(1)] = {
                "used_bytes": int(m.group(2)),
                "requested_bytes": int(m.group(3)),
                "count": int(m.group(4)),
            }
    return out


def estimate_32bit(min_bytes: int, recording: dict) -> tuple[int, dict]:
    """Host minimum minus the pointer-size savings of the recorded persistent structures."""
    savings = {}
    for category, (struct, host, m32) in STRUCT_SIZES.items():
        rec = recording["categories"].get(category)
        if not rec:
            continue
        count = rec["count"]
        if category == "Persistent TfLiteTensor quantization data":
            count //= 2  # each quantised tensor: one TfLiteAffineQuantization + one int array
        savings[struct] = count * (host - m32)
    return round_up(max(min_bytes - sum(savings.values()), 0)), savings


def measure_arena(
    model: bytes, margin_pct: float = DEFAULT_MARGIN_PCT, source: str = "model"
) -> ArenaResult:
    """Bisect the arena size in a TFLM child process; see the module docstring."""
    if margin_pct < 0:
        raise FirmwareGenError(f"arena margin must be >= 0 (got {margin_pct})")
    with Prober(model) as p:
        ok, reason = p.try_arena(MAX_ARENA)
        if not ok:
            if reason == "crashed":
                raise FirmwareGenError(
                    f"{source}: TFLM crashed loading the model (corrupt flatbuffer?)"
                )
            raise FirmwareGenError(
                f"{source}: TFLM cannot run the model even with a {MAX_ARENA}-byte arena: {reason}"
            )
        hi, _ = bisect_min(lambda size: p.try_arena(size)[0], MAX_ARENA)
        probes = p.requests
    # Check both ends in fresh processes, so no state of the search can leak into the answer.
    with Prober(model) as p:
        if not p.try_arena(hi)[0]:
            raise FirmwareGenError(f"{source}: arena search was not repeatable at {hi} bytes")
        below_fails = hi - ALIGN < 0 or not p.try_arena(hi - ALIGN)[0]
        recording = parse_recording(p.record(hi))
    est, savings = estimate_32bit(hi, recording)
    recommended = round_up(max(hi, est) * (1 + margin_pct / 100))
    return ArenaResult(hi, below_fails, probes, recording, est, savings, margin_pct, recommended)
