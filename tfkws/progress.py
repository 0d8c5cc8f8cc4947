"""Progress of a long step (synthesis, clip loading, evaluation): counts, rate and ETA.

On a terminal one bar redrawn in place; elsewhere (a log file, CI) a line at every tenth of the
work once the step has run for QUIET_SECONDS, and always its last line, so a log shows a long step
moving and a quick one in one line. Printed to stdout, flushed, in order with the step titles.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR = 24
REDRAW_SECONDS = 0.2
QUIET_SECONDS = 2.0


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """``with Progress("loading clips", n) as p: ... p.update()`` per item."""

    def __init__(
        self, what: str, total: int, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.what, self.total = what, max(int(total), 0)
        self.stream = stream or sys.stdout
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.t0 = time.monotonic()
        self._shown_tenth = 0
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """``what: done/total (pct %), elapsed, ETA`` as it stands."""
        elapsed = time.monotonic() - self.t0
        pct = 100 * self.done // self.total if self.total else 100
        text = f"{self.what}: {self.done}/{self.total} ({pct} %), {format_seconds(elapsed)}"
        if 0 < self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done)
            text += f", ETA {format_seconds(eta)}"
        return text

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._drawn >= REDRAW_SECONDS or self.done == self.total:
                self._drawn = now
                filled = BAR * self.done // self.total
                bar = "#" * filled + "." * (BAR - filled)
                self.stream.write(f"\r[{bar}] {self.line()}\033[K")
                self.stream.flush()
            return
        tenth = 10 * self.done // self.total
        if tenth > self._shown_tenth:
            self._shown_tenth = tenth
            slow = time.monotonic() - self.t0 >= QUIET_SECONDS
            if slow or self.done == self.total:
                print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar's line on a terminal (the last state stays on screen)."""
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0.0
