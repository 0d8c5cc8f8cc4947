"""``tfkws slim extract``: export one width of a trained slimmable supernet run as int8.

Extract (``tfkws.folding.slim_width.extract_width``), fold, check against the supernet at that
width, calibrate on the run's own training clips, convert, write ``.tflite`` + metadata (with a
``slim`` block naming the width), as ``tfkws export`` does for a plain run.
"""

from __future__ import annotations

import os
from pathlib import Path

from absl import logging

from tfkws.conversion.export import ExportResult, export_folded
from tfkws.errors import TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.folding.slim_width import extract_width, width_metadata
from tfkws.layers.slimmable_base import set_width, slimmable_layers
from tfkws.quantization.calibration import ptq_clips, representative_features
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS
from tfkws.runs.model import load_trained_model


def export_width(
    run_dir: str | os.PathLike,
    width: float,
    out_path: str | os.PathLike,
    num_calibration: int = REPRESENTATIVE_CLIPS,
    seed: int = 0,
    data: str | None = None,
) -> ExportResult:
    """``tfkws export`` for one width of a trained supernet: extract, fold, int8, metadata.

    The folded sub-network is checked against the supernet run at ``width`` before conversion.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".tflite":
        raise TfkwsError(f"{out_path}: output must end in .tflite")
    supernet, run = load_trained_model(run_dir, batch_size=1)
    if not slimmable_layers(supernet):
        raise TfkwsError(f"{run_dir}: model {run.train.model!r} is not a slimmable supernet")
    set_width(supernet, width)
    folded = fold_model(extract_width(supernet, width, batch_size=1))
    rep = ptq_clips(representative_features(run, num_calibration, seed, data), seed)
    logging.info("width %s: calibration on %d training clips", width, len(rep))
    return export_folded(
        run_dir,
        run,
        out_path,
        supernet,
        folded,
        rep,
        seed,
        int(folded.count_params()),
        what=f"width {width} sub-network differs from the supernet",
        extra={"slim": width_metadata(supernet, width)},
    )
