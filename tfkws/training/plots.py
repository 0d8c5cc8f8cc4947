"""PNG plots a person would rather look at than a log: learning curves and confusion matrices."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _save(fig: plt.Figure, path: str | os.PathLike) -> None:
    import io

    from tfkws import atomic

    buf = io.BytesIO()
    # No timestamp in the PNG metadata, so the same run gives the same file.
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())


def plot_learning_curves(history: dict[str, Sequence[float]], path: str | os.PathLike) -> None:
    """Loss and accuracy per epoch for training and validation, plus the learning rate."""
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        if key in history:
            ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        if f"ema_val_{key}" in history:  # the weight average's (training with --ema_decay)
            ax.plot(epochs, history[f"ema_val_{key}"], label="validation, averaged weights")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    if "lr" in history:
        axes[2].plot(epochs, history["lr"])
    axes[2].set_title("learning rate")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    _save(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike, title: str = ""
) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) with counts."""
    matrix = np.asarray(matrix)
    n = len(labels)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"{title} accuracy {100 * acc:.2f} %".strip())
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color
                    )
    _save(fig, path)
