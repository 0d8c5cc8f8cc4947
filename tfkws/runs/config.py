"""What a training run is: saved as ``run_config.json`` in the run folder and read back by
export, verify and eval, so every later stage uses the model's own labels and features."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tfkws import __version__, atomic
from tfkws.errors import TfkwsError
from tfkws.features.config import FeatureConfig
from tfkws.runs.files import RUN_CONFIG

# QAT fine-tunes the folded graph: no BatchNorm to absorb large steps and no dropout. On Arabic
# Speech Commands (benchmarks/results/qat.md) the float lr / 10 lost 1-2 points in 3 epochs,
# lr / 100 kept the float accuracy: the default peak QAT learning rate is the float one / 100.
QAT_LR_FACTOR = 0.01


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of one run (all of them, so a run can be repeated exactly)."""

    model: str = "ds_cnn"
    model_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 100
    learning_rate: float = 0.005
    lr_schedule: str = "cosine"  # cosine | constant | step
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    seed: int = 0
    augment: bool = True
    time_shift_ms: int = 100
    noise_prob: float = 0.8
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    # Speed perturbation: resample every training clip by a factor in 1 +/- speed_perturb.
    speed_perturb: float = 0.0
    # SpecAugment on the features (0 = off): stripes of frames and bands of channels zeroed.
    time_masks: int = 0
    time_mask_frames: int = 0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    strategy: str = "auto"
    # Quantization-aware training: the last ``qat_epochs`` epochs fine-tune the folded model
    # with tfmot fake-quant (``qat_source``: a trained float run to start from instead).
    qat: bool = False
    qat_epochs: int = 0
    qat_learning_rate: float | None = None  # None: learning_rate * QAT_LR_FACTOR
    qat_source: str | None = None
    # QAT of one width of a slimmable supernet (``tfkws slim qat``): the run's model is the
    # sub-network ``extract_width(model, slim_width)`` of the ``model`` supernet at ``qat_source``.
    slim_width: float | None = None
    # Knowledge distillation (float phase): trained runs whose mean softened predictions the
    # model also learns, with this weight (labels get 1 - weight) and temperature.
    teachers: list[str] = dataclasses.field(default_factory=list)
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    # Exponential moving average of the weights (float phase; 0 = off): validation, the best
    # weights and so the export use the average (``tfkws.training.weight_average``).
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("cosine", "constant", "step"):
            raise TfkwsError(
                f"unknown lr_schedule {self.lr_schedule!r}; use cosine, constant or step"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise TfkwsError("epochs and batch_size must be >= 1")
        if not 0.0 <= self.speed_perturb < 0.5:
            raise TfkwsError(f"speed_perturb must be in [0, 0.5), got {self.speed_perturb}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0.0:
            raise TfkwsError(
                "distill_weight must be in [0, 1] and distill_temperature > 0, got "
                f"{self.distill_weight}, {self.distill_temperature}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise TfkwsError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.qat and (self.qat_epochs or self.qat_source):
            raise TfkwsError("qat_epochs / qat_source need qat=True")
        if self.qat and not 1 <= self.qat_epochs <= self.epochs:
            raise TfkwsError(
                f"qat_epochs must be between 1 and epochs ({self.epochs}), got {self.qat_epochs}"
            )
        if self.slim_width is not None and not (self.qat and self.qat_source):
            raise TfkwsError("slim_width (QAT of one supernet width) needs qat and qat_source")
        if self.qat and self.qat_epochs == self.epochs and not self.qat_source:
            raise TfkwsError(
                "QAT needs a trained float model: qat_epochs must be < epochs "
                "(float warm-up first), or fine-tune a float run with tfkws qat"
            )

    @property
    def float_epochs(self) -> int:
        """Epochs trained in float before the QAT phase (all of them without QAT)."""
        return self.epochs - (self.qat_epochs if self.qat else 0)


@dataclasses.dataclass
class RunConfig:
    """Everything needed to rebuild the trained model and its inputs."""

    train: TrainConfig
    features: FeatureConfig
    labels: list[str]
    data: str
    dataset_mode: str = "12class"
    noise_dir: str | None = None
    tfkws_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": dataclasses.asdict(self.train),
            "features": self.features.to_dict(),
            "labels": list(self.labels),
            "data": self.data,
            "dataset_mode": self.dataset_mode,
            "noise_dir": self.noise_dir,
            "tfkws_version": self.tfkws_version,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        return cls(
            train=TrainConfig(**d["train"]),
            features=FeatureConfig.from_dict(d["features"]),
            labels=list(d["labels"]),
            data=d["data"],
            dataset_mode=d.get("dataset_mode", "12class"),
            noise_dir=d.get("noise_dir"),
            tfkws_version=d.get("tfkws_version", "?"),
        )

    def open_dataset(self, data: str | os.PathLike | None = None, with_noise: bool = True) -> Any:
        """The run's dataset as it was trained: its class order, mode and split seed (``data``
        if the dataset moved since training; ``with_noise`` adds the run's noise folder)."""
        from tfkws.data.dataset import open_dataset

        return open_dataset(
            data or self.data,
            mode=self.dataset_mode,
            labels=self.labels,
            keywords=tuple(k for k in self.labels if not k.startswith("_")),
            seed=self.train.seed,
            noise_dir=self.noise_dir if with_noise else None,
        )

    def save(self, run_dir: str | os.PathLike) -> None:
        atomic.write_json(Path(run_dir) / RUN_CONFIG, self.to_dict())

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> RunConfig:
        path = Path(run_dir) / RUN_CONFIG
        if not path.exists():
            raise TfkwsError(f"{run_dir}: not a tfkws run folder (no {RUN_CONFIG})")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise TfkwsError(f"{path}: unreadable run config ({e})") from None
