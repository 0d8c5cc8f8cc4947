"""DET curve PNG: false reject rate against false accepts per hour, one curve per system."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any


def plot_det(
    curves: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike,
    target_fa_per_hour: float | None = None,
) -> None:
    """``curves``: name -> an ``evaluate`` report; written atomically (no PNG timestamp)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tfkws import atomic

    fig, ax = plt.subplots(figsize=(6, 4.5))
    floor = None
    for name, rep in curves.items():
        rows = [r for r in rep["thresholds"] if r["false_accepts_per_hour"] is not None]
        if not rows or rep["keyword_free_hours"] <= 0:
            continue
        floor = 0.5 / rep["keyword_free_hours"]  # 0 FA drawn as half a false accept (log axis)
        fa = [max(r["false_accepts_per_hour"], floor) for r in rows]
        fr = [100 * r["false_reject_rate"] for r in rows]
        ax.plot(fa, fr, marker=".", label=f"{name} ({rep['keyword_free_hours']:.2f} h)")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (keyword-free audio)")
    ax.set_ylabel("false rejects (%)")
    if target_fa_per_hour:
        ax.axvline(target_fa_per_hour, color="grey", ls="--", lw=1)
    if floor is not None:
        ax.set_title("DET (0 false accepts drawn as half of one over the hours)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:  # no curve without keyword-free audio
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
