"""Random weights with clearly non-trivial BatchNorm statistics, for the exactness tests.

Folding and width-extraction bugs hide behind identity statistics (mean 0, variance 1, gamma 1,
beta 0): every equivalence test therefore starts from weights drawn here.

* ``layer``: one layer or block; strong statistics, kernels N(0, 0.5).
* ``network``: a whole model; milder statistics and fan-in-scaled kernels, so activations stay
  O(1) through a deep stack instead of overflowing float32 tolerances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROFILES: dict[str, dict[str, Any]] = {
    "layer": {"variance": (0.2, 3.0), "mean": 2.0, "gamma": (0.3, 2.0), "shift": 1.0},
    "network": {"variance": (0.5, 2.0), "mean": 0.3, "gamma": (0.5, 1.5), "shift": 0.2},
}


def _kernel(rng: np.random.Generator, name: str, shape: tuple, profile: str) -> np.ndarray:
    if profile == "layer":
        return rng.normal(0.0, 0.5, shape)
    if "depthwise" in name:
        fan_in = int(np.prod(shape[:2]))
    else:
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape)


def randomize(obj: Any, seed: int = 0, profile: str = "layer") -> Any:
    """Assign random values to every weight of ``obj`` (a layer or model); return ``obj``."""
    p = PROFILES[profile]
    rng = np.random.default_rng(seed)
    for w in obj.weights:
        name, shape = w.name, tuple(w.shape)
        if "moving_variance" in name:
            value = rng.uniform(*p["variance"], shape)
        elif "moving_mean" in name:
            value = rng.normal(0.0, p["mean"], shape)
        elif "gamma" in name:
            value = rng.uniform(*p["gamma"], shape)
        elif "beta" in name or "bias" in name:
            value = rng.normal(0.0, p["shift"], shape)
        else:
            value = _kernel(rng, name, shape, profile)
        w.assign(value.astype(np.float32))
    return obj
