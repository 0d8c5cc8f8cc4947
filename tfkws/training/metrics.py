"""Accuracy summaries shared by training, eval and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return m


def accuracy_report(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """Overall accuracy, per-class accuracy (recall) and the confusion matrix, JSON-ready."""
    m = confusion_matrix(y_true, y_pred, len(labels))
    support = m.sum(axis=1)
    per_class = {
        lab: {
            "accuracy": float(m[i, i] / support[i]) if support[i] else None,
            "count": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }
    total = int(m.sum())
    return {
        "accuracy": float(np.trace(m) / total) if total else 0.0,
        "num_clips": total,
        "labels": list(labels),
        "per_class": per_class,
        "confusion_matrix": m.tolist(),
    }
