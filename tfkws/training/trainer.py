"""Train a registered model on a KWS dataset under a ``tf.distribute`` strategy.

One ``model.fit`` call per epoch with that epoch's own deterministic dataset, then a checkpoint
(model, optimizer, epoch): a killed run resumes from its last finished epoch and ends with the same
weights as an uninterrupted one.

``train`` composes small steps: start the run folder, load the clips once (into memory or the
disk cache, ``tfkws.data.clip_cache``), then one phase per model graph (float, then QAT for a
QAT run; the phase's model comes from ``tfkws.training.phases``: sandwich-wrapped,
fake-quantised, distilling), then evaluate and write the results. File names of the run
folder are ``tfkws.runs.files``'.

Under ``MultiWorkerMirroredStrategy`` every worker runs this same code in lockstep (saving
reads replicated variables, a collective op); the chief writes the run folder, the others a
temporary folder, and a barrier after each epoch makes the chief's files complete before any
worker reads them (a resumed job reads the chief's checkpoints: ``--out`` must be shared).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from tfkws import atomic
from tfkws.data.augment import AugmentConfig
from tfkws.data.clip_cache import DiskClips, cached_clips, default_cache_dir
from tfkws.data.kws_dataset import KwsDataset
from tfkws.data.pipeline import ReplicaSlice, load_clips, load_noise, make_dataset
from tfkws.data.spec_augment import SpecAugmentConfig
from tfkws.errors import TfkwsError
from tfkws.features.config import FeatureConfig
from tfkws.features.extract import feature_fn_tf
from tfkws.quantization.calibration import qat_start_clips
from tfkws.runs.config import QAT_LR_FACTOR, RunConfig, TrainConfig
from tfkws.runs.files import (
    BEST_WEIGHTS,
    CHECKPOINTS,
    FLOAT_BEST_WEIGHTS,
    HISTORY,
    QAT_CHECKPOINTS,
    QAT_START,
    RESULTS,
    RUN_CONFIG,
)
from tfkws.training import plots
from tfkws.training.inner_model import InnerModelWeights
from tfkws.training.metrics import accuracy_report
from tfkws.training.phases import float_model, qat_from_float, with_teachers
from tfkws.training.progress import EpochLine
from tfkws.training.strategy import barrier, is_chief, make_strategy, worker_index
from tfkws.training.weight_average import WeightAverage

CLIP_STORES = ("auto", "memory", "disk")
# What a collective step raises when a peer worker died (a multi-worker job then restarts).
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError)
# --clip_store auto: splits of more clips than this are decoded to the disk cache, not memory
# (20,000 one-second clips are 640 MB as int16).
DISK_CLIPS_ABOVE = 20_000


def set_determinism(seed: int) -> None:
    """Same seed -> same weights: seeded Python/NumPy/TF RNGs and deterministic TF ops."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_lr_schedule(
    cfg: TrainConfig, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
    return WarmupSchedule(cfg.learning_rate, cfg.lr_schedule, warmup, total)


@keras.utils.register_keras_serializable(package="tfkws")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then constant, cosine decay to 0, or x0.1 steps at 50 % and 75 %."""

    def __init__(self, base_lr: float, kind: str, warmup_steps: int, total_steps: int) -> None:
        self.base_lr = float(base_lr)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        total = tf.cast(self.total_steps, tf.float32)
        progress = tf.clip_by_value(
            (step - self.warmup_steps) / tf.maximum(total - self.warmup_steps, 1.0), 0.0, 1.0
        )
        if self.kind == "cosine":
            lr = 0.5 * self.base_lr * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "step":
            lr = self.base_lr * tf.where(progress < 0.5, 1.0, tf.where(progress < 0.75, 0.1, 0.01))
        else:
            lr = tf.constant(self.base_lr)
        if self.warmup_steps > 0:
            lr = tf.where(step < self.warmup_steps, self.base_lr * (step + 1.0) / warm, lr)
        return lr

    def get_config(self) -> dict[str, Any]:
        return {
            "base_lr": self.base_lr,
            "kind": self.kind,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }


def make_loss(num_classes: int, label_smoothing: float = 0.0) -> Any:
    """Cross-entropy on logits for integer labels, with optional label smoothing.

    Keras's sparse loss has no smoothing, so smoothed runs one-hot the labels first.
    """
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if not 0.0 < label_smoothing < 1.0:
        raise TfkwsError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    cce = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)

    def smoothed_cross_entropy(y_true: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        return cce(tf.one_hot(labels, num_classes), logits)

    return smoothed_cross_entropy


def _augment_config(cfg: TrainConfig) -> AugmentConfig | None:
    if not cfg.augment:
        return None
    return AugmentConfig(
        time_shift_ms=cfg.time_shift_ms,
        noise_prob=cfg.noise_prob,
        snr_db=(cfg.snr_db_min, cfg.snr_db_max),
        speed=(1.0 - cfg.speed_perturb, 1.0 + cfg.speed_perturb),
    )


def _check_resume(run_dir: Path, run: RunConfig, resume: bool) -> None:
    cfg_path = run_dir / RUN_CONFIG
    if cfg_path.exists():
        if not resume:
            raise TfkwsError(
                f"{run_dir}: already holds a run; pass --resume to continue it "
                "or choose another --out"
            )
        # Through RunConfig: a run saved before a setting existed holds that setting's default.
        saved = json.loads(cfg_path.read_text())
        try:
            saved = RunConfig.from_dict(saved).to_dict()
        except (KeyError, TypeError) as err:
            raise TfkwsError(f"{cfg_path}: not a run config this tfkws can resume ({err})") from err
        now = json.loads(json.dumps(run.to_dict()))  # as saved: tuples become lists
        diff = sorted(
            k for k in ("train", "features", "labels", "data") if saved.get(k) != now.get(k)
        )
        if diff:
            raise TfkwsError(
                f"{cfg_path}: --resume with different settings ({', '.join(diff)}); "
                "use the same flags"
            )
    elif resume and (run_dir / CHECKPOINTS).exists():
        raise TfkwsError(f"{run_dir}: cannot resume, {RUN_CONFIG} is missing")


def _predict(model: keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    ys, ps = [], []
    for x, y in ds:
        ps.append(np.argmax(model(x, training=False).numpy(), axis=-1))
        ys.append(y.numpy())
    return np.concatenate(ys), np.concatenate(ps)


def train(
    dataset: KwsDataset,
    features: FeatureConfig,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    data_path: str = "",
    dataset_mode: str = "12class",
    noise_dir: str | None = None,
    test_split: str | None = "testing",
    verbose: int = 1,
    strategy: tf.distribute.Strategy | None = None,
    clip_store: str = "memory",
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train, checkpoint each epoch, keep the best weights on validation; return the results.

    ``verbose``: 0 quiet, 1 one tfkws line per epoch, 2 also Keras's own epoch output.
    ``strategy``: made from ``cfg.strategy`` when not given (a multi-worker one must be made
    before the process runs any TensorFlow op: ``tfkws train`` makes it at startup).
    ``clip_store``: clips decoded into ``memory``, or into the ``disk`` cache under
    ``cache_dir`` (bounded memory; ``auto``: disk above DISK_CLIPS_ABOVE clips); the same
    weights either way.

    Writes into ``out_dir``: run_config.json, checkpoints/, best_weights.h5, history.json,
    logs/ (TensorBoard), plots/*.png, results.json, train.log. With several workers only the
    chief writes there; the others write the same files to a temporary folder (deleted at the
    end) and read checkpoints and best weights from ``out_dir``, which must be shared.
    """
    if clip_store not in CLIP_STORES:
        raise TfkwsError(f"unknown clip store {clip_store!r}; choose one of {CLIP_STORES}")
    strategy = strategy or make_strategy(cfg.strategy)  # first: before any TensorFlow op
    run_dir = Path(out_dir)
    chief = is_chief(strategy)
    write_dir = run_dir if chief else _worker_dir(run_dir, worker_index(strategy)[0])
    try:
        return _train(
            dataset,
            features,
            cfg,
            run_dir,
            write_dir,
            strategy,
            resume,
            data_path,
            dataset_mode,
            noise_dir,
            test_split,
            verbose,
            clip_store,
            cache_dir,
        )
    except PEER_ERRORS as err:
        if worker_index(strategy)[1] == 1:
            raise
        text = str(err).strip()
        reason = text.splitlines()[0][:200] if text else type(err).__name__
        raise TfkwsError(
            f"{run_dir}: a worker of the cluster is gone ({reason}); start every worker again "
            "with the same command and --resume: the job goes on after the last finished epoch"
        ) from None
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)


def _worker_dir(run_dir: Path, index: int) -> Path:
    """A non-chief worker's write folder: named after the run and the worker, so a restarted
    worker first removes what a killed one left behind."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"tfkws-worker{index}-{digest}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _train(
    dataset: KwsDataset,
    features: FeatureConfig,
    cfg: TrainConfig,
    run_dir: Path,
    write_dir: Path,
    strategy: tf.distribute.Strategy,
    resume: bool,
    data_path: str,
    dataset_mode: str,
    noise_dir: str | None,
    test_split: str | None,
    verbose: int,
    clip_store: str,
    cache_dir: str | os.PathLike | None,
) -> dict[str, Any]:
    """``train`` once the strategy and this worker's write folder are known."""
    run = RunConfig(
        train=cfg,
        features=features,
        labels=list(dataset.labels),
        data=data_path,
        dataset_mode=dataset_mode,
        noise_dir=noise_dir,
    )
    _start_run(run_dir, run, resume, write=run_dir == write_dir)

    t0 = time.time()
    disk = _cache_root(clip_store, cache_dir, dataset)
    clips = _load_run_clips(dataset, features, cfg, test_split, disk)
    feature_fn = feature_fn_tf(features)
    augment = _augment_config(cfg)
    teacher = _teacher_loader(cfg, features, list(dataset.labels), strategy)
    eval_ds = _eval_datasets(clips, feature_fn, cfg)
    history = _load_history(run_dir, resume)
    train_ds_for, steps = _training_batches(clips, feature_fn, cfg, augment, strategy)
    shared = _Phases(
        cfg=cfg,
        run_dir=run_dir,
        write_dir=write_dir,
        strategy=strategy,
        features=features,
        labels=list(dataset.labels),
        steps_per_epoch=steps,
        history=history,
        resume=resume,
        train_ds_for=train_ds_for,
        calibration=lambda: qat_start_clips(dataset, features),
        teacher=teacher if cfg.teachers else None,
        val_ds=eval_ds["val"],
        tensorboard=keras.callbacks.TensorBoard(
            str(write_dir / "logs"), write_graph=False, profile_batch=0
        ),
        verbose=verbose,
    )
    ran_here = 0.0  # seconds of epochs this process ran (earlier processes' are in history)
    for qat_phase in _phases_to_run(cfg, run_dir):
        model, best_var, seconds = _train_phase(qat_phase, shared)
        ran_here += seconds

    model.load_weights(str(run_dir / BEST_WEIGHTS))  # the chief's, complete (barrier)
    # A resumed run counts the epochs its killed predecessors finished, not only its own time.
    earlier = sum(history.get("epoch_seconds", [])) - ran_here
    results = _summary(model, best_var, cfg, run_dir, history, time.time() - t0 + earlier)
    # Every worker evaluates (reading synchronised BatchNorm statistics is a collective op).
    labels = list(dataset.labels)
    results.update(_evaluate(model, eval_ds, cfg, labels, write_dir, plot=write_dir == run_dir))
    if cfg.teachers:  # what the student learnt from, measured on the same validation split
        results["teachers"] = _teachers_report(teacher(), eval_ds["val"], cfg)
    atomic.write_json(write_dir / RESULTS, results)
    return results


def _cache_root(
    clip_store: str, cache_dir: str | os.PathLike | None, dataset: KwsDataset
) -> Path | None:
    """The disk cache folder when the clips go to disk, ``None`` for memory."""
    if clip_store == "auto":
        biggest = max(len(v) for v in dataset.splits.values()) if dataset.splits else 0
        clip_store = "disk" if biggest > DISK_CLIPS_ABOVE else "memory"
    if clip_store == "memory":
        return None
    return Path(cache_dir) if cache_dir else default_cache_dir()


def _start_run(run_dir: Path, run: RunConfig, resume: bool, write: bool = True) -> None:
    """Check the folder (and teachers) before anything is written, then write the run config
    and seed every RNG. ``write=False`` (a worker other than the chief): seeding only."""
    if write:
        _check_resume(run_dir, run, resume)
    if run.train.teachers:  # before anything is written
        from tfkws.training.distill import check_teachers

        check_teachers(run.train.teachers, run.features, list(run.labels))
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        run.save(run_dir)
    set_determinism(run.train.seed)


# One split's clips: (int16 clips, label ids) in memory, or the same on disk.
Clips = tuple[np.ndarray, np.ndarray] | tuple[DiskClips, None]


@dataclasses.dataclass
class _RunClips:
    """A run's audio, loaded once: (clips, label ids) per split, and the noise recordings."""

    noise: Any
    train: Clips
    val: Clips
    test: Clips | None


def _load_run_clips(
    dataset: KwsDataset,
    features: FeatureConfig,
    cfg: TrainConfig,
    test_split: str | None,
    cache_dir: Path | None = None,
) -> _RunClips:
    """Every clip of the run, loaded once (clip ``i`` of a split is the same every epoch):
    into memory, or with ``cache_dir`` into (or from) the disk cache."""
    t0 = time.time()
    n = features.clip_samples
    noise = load_noise(dataset.noise_files, features.sample_rate)

    def load(split: str, seed: int) -> Clips:
        examples = dataset.split(split)
        if cache_dir is None:
            return load_clips(examples, dataset.labels, n, noise, seed=seed)
        disk = cached_clips(
            examples,
            dataset.labels,
            n,
            noise,
            dataset.noise_files,
            seed,
            cache_dir,
            sample_rate=features.sample_rate,
        )
        return disk, None

    train_xy = load("training", cfg.seed)
    val_xy = load("validation", cfg.seed + 1)
    test_xy = None
    if test_split and dataset.has_split(test_split):
        test_xy = load(test_split, cfg.seed + 2)
    logging.info(
        "%s %d training, %d validation clips in %.1f s",
        "cached" if cache_dir else "loaded",
        len(train_xy[0]),
        len(val_xy[0]),
        time.time() - t0,
    )
    return _RunClips(noise, train_xy, val_xy, test_xy)


def _eval_datasets(
    clips: _RunClips, feature_fn: Callable, cfg: TrainConfig
) -> dict[str, tf.data.Dataset]:
    """Un-augmented, cached batches of the validation (and test) clips."""
    eval_ds = {
        "val": make_dataset(*clips.val, feature_fn, cfg.batch_size, training=False, seed=cfg.seed),
    }
    if clips.test is not None:
        eval_ds["test"] = make_dataset(
            *clips.test, feature_fn, cfg.batch_size, training=False, seed=cfg.seed
        )
    return eval_ds


def _training_batches(
    clips: _RunClips,
    feature_fn: Callable,
    cfg: TrainConfig,
    augment: AugmentConfig | None,
    strategy: tf.distribute.Strategy,
) -> tuple[Callable[[int], Any], int]:
    """``(epoch -> that epoch's augmented training batches, steps per epoch)``; same seed +
    epoch: same batches.

    ``--batch_size`` is the global batch. With several workers each one's pipeline yields only
    its replicas' equal parts of every global batch (``ReplicaSlice``; fed to Keras as a
    distributed dataset), so no clip is read twice an epoch and the summed per-replica mean
    gradients are the global batch's mean gradient. One worker (one device, or MirroredStrategy
    over local GPUs): Keras splits each global batch between the local replicas itself.
    """
    n = len(clips.train[0])
    replicas = strategy.num_replicas_in_sync
    spec = SpecAugmentConfig(
        cfg.time_masks, cfg.time_mask_frames, cfg.freq_masks, cfg.freq_mask_bins
    )

    def batches(epoch: int, part: ReplicaSlice | None = None) -> tf.data.Dataset:
        return make_dataset(
            *clips.train,
            feature_fn,
            cfg.batch_size,
            training=True,
            seed=cfg.seed,
            epoch=epoch,
            augment=augment,
            noise=clips.noise,
            spec=spec,
            replicas=part,
        )

    if worker_index(strategy)[1] == 1:
        return batches, math.ceil(n / cfg.batch_size)
    if cfg.batch_size % replicas:
        raise TfkwsError(
            f"--batch_size {cfg.batch_size} (the global batch) must be a multiple of the "
            f"{replicas} replicas in sync"
        )

    def distributed(epoch: int) -> Any:
        def fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
            first = ctx.input_pipeline_id * local
            return batches(epoch, ReplicaSlice(first, local, ctx.num_replicas_in_sync))

        return strategy.distribute_datasets_from_function(fn)

    steps = n // cfg.batch_size + bool((n % cfg.batch_size) // replicas)
    return distributed, steps


def _load_history(run_dir: Path, resume: bool) -> dict[str, list[float]]:
    """Per-epoch history of a resumed run (trimmed to its checkpoint by each phase), else empty."""
    hist_path = run_dir / HISTORY
    if resume and hist_path.exists():
        return json.loads(hist_path.read_text())
    return {}


def _teachers_report(
    teacher: keras.Model, val_ds: tf.data.Dataset, cfg: TrainConfig
) -> dict[str, Any]:
    """Which runs the student learnt from and their ensemble's validation accuracy."""
    y, p = _predict(teacher, val_ds)
    report = {"runs": list(cfg.teachers), "val_accuracy": float(np.mean(y == p))}
    logging.info("teachers' val accuracy: %.2f %%", 100 * report["val_accuracy"])
    return report


def _teacher_loader(
    cfg: TrainConfig,
    features: FeatureConfig,
    labels: list[str],
    strategy: tf.distribute.Strategy,
) -> Callable[[], keras.Model]:
    """``teacher()``: the teachers' ensemble, loaded once, when the first phase needs it; both
    phases learn from it, results report its accuracy."""
    teachers: list[keras.Model] = []

    def teacher() -> keras.Model:
        if not teachers:
            from tfkws.training.distill import load_teachers

            with strategy.scope():
                teachers.append(load_teachers(cfg.teachers, features, labels))
        return teachers[0]

    return teacher


def _phases_to_run(cfg: TrainConfig, run_dir: Path) -> list[bool]:
    """``qat_phase`` of each phase still to run: float, then QAT for a QAT run."""
    if cfg.qat and (cfg.float_epochs == 0 or _latest(run_dir / QAT_CHECKPOINTS)):
        return [True]  # float phase done (or done elsewhere: tfkws qat)
    return [False, True] if cfg.qat else [False]


def _param_report(cfg: TrainConfig, model: keras.Model) -> dict[str, Any] | None:
    """The registered parameter report of the run's model (None for most models)."""
    from tfkws.models.catalog import resolve_params
    from tfkws.models.registry import has_param_report, param_report

    if not has_param_report(cfg.model):
        return None
    while isinstance(model, InnerModelWeights):  # a distillation / sandwich wrapper: its student
        model = model.inner_model()
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    return param_report(cfg.model, shape, classes, resolve_params(cfg.model, cfg.model_params))


def _summary(
    model: keras.Model,
    best_var: tf.Variable,
    cfg: TrainConfig,
    run_dir: Path,
    history: dict[str, list[float]],
    seconds: float,
) -> dict[str, Any]:
    """The run's headline numbers (before the per-split accuracy reports)."""
    results: dict[str, Any] = {
        "model": cfg.model,
        "model_params": cfg.model_params,
        "params": int(model.count_params()),
        "epochs": cfg.epochs,
        "qat": cfg.qat,
        "best_val_accuracy": float(best_var.numpy()),
        "train_seconds": round(seconds, 1),
    }
    if cfg.slim_width is not None:
        results["slim_width"] = cfg.slim_width
    report = _param_report(cfg, model)
    if report is not None:  # weight-shared models: unique vs applied weights per level
        results["param_report"] = report
    if (run_dir / QAT_START).exists():
        start = json.loads((run_dir / QAT_START).read_text())["val_accuracy"]
        results["qat_start_val_accuracy"] = start
        # No QAT epoch beat the start: the run's best weights are the calibrated start's.
        results["qat_kept_start"] = bool(
            max(history.get("val_accuracy", [0.0])[cfg.float_epochs :] or [0.0]) <= start
        )
    if hasattr(model, "cost_report"):  # sandwich training: cost in full-width steps
        results["sandwich_cost"] = model.cost_report()
    return results


def _evaluate(
    model: keras.Model,
    eval_ds: dict[str, tf.data.Dataset],
    cfg: TrainConfig,
    labels: list[str],
    run_dir: Path,
    plot: bool = True,
) -> dict[str, Any]:
    """Accuracy report (and confusion-matrix plot) of the best model on every eval split."""
    reports = {}
    for name, ds in eval_ds.items():
        y, p = _predict(model, ds)
        rep = accuracy_report(y, p, labels)
        reports[name] = rep
        if plot:  # plots are for people: the chief's only
            plots.plot_confusion_matrix(
                np.array(rep["confusion_matrix"]),
                labels,
                run_dir / "plots" / f"confusion_{name}.png",
                title=f"{'QAT' if cfg.qat else 'float'} {name}",
            )
        logging.info(
            "%s accuracy (%s): %.2f %%", name, "QAT" if cfg.qat else "float", 100 * rep["accuracy"]
        )
    return reports


def _latest(ckpt_dir: Path) -> str | None:
    return tf.train.latest_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None


@dataclasses.dataclass
class _Phases:
    """What the float and QAT phases of one run share."""

    cfg: TrainConfig
    run_dir: Path  # read: checkpoints, best weights (the chief's)
    write_dir: Path  # written: the run folder on the chief, a temporary folder elsewhere
    strategy: tf.distribute.Strategy
    features: FeatureConfig
    labels: list[str]
    steps_per_epoch: int
    history: dict[str, list[float]]  # updated in place, epoch by epoch
    resume: bool
    train_ds_for: Callable[[int], Any]  # epoch -> that epoch's (distributed) batches
    calibration: Callable[[], np.ndarray]  # clips that start a fresh QAT phase's ranges
    teacher: Callable[[], keras.Model] | None  # distillation's teachers, if any
    val_ds: tf.data.Dataset
    tensorboard: keras.callbacks.Callback
    verbose: int


def _phase_model(qat_phase: bool, p: _Phases, fresh: bool) -> tuple[keras.Model, Any]:
    """The phase's model (``tfkws.training.phases``) and learning-rate schedule.

    A fresh QAT phase starts from the float phase's best weights and calibrated ranges; a
    resumed one gets both from its checkpoint.
    """
    cfg = p.cfg
    first, last = (cfg.float_epochs, cfg.epochs) if qat_phase else (0, cfg.float_epochs)
    if qat_phase:
        model = qat_from_float(
            cfg,
            p.features.shape,
            len(p.labels),
            p.run_dir / FLOAT_BEST_WEIGHTS if fresh else None,
            p.calibration() if fresh else None,
        )
        lr = cfg.qat_learning_rate or cfg.learning_rate * QAT_LR_FACTOR
        schedule: Any = WarmupSchedule(
            lr, cfg.lr_schedule, 0, max((last - first) * p.steps_per_epoch, 1)
        )
    else:
        model = float_model(
            cfg, p.features.shape, len(p.labels), sync_bn=p.strategy.num_replicas_in_sync > 1
        )
        schedule = make_lr_schedule(cfg, p.steps_per_epoch)
    if p.teacher is not None:
        model = with_teachers(model, cfg, p.teacher)
    return model, schedule


def _train_phase(qat_phase: bool, p: _Phases) -> tuple[keras.Model, tf.Variable, float]:
    """Epochs ``[0, float_epochs)`` in float, or ``[float_epochs, epochs)`` as QAT.

    Each phase has its own model graph, optimizer, LR schedule and checkpoint folder; a QAT
    phase starts from the float phase's best weights, folded. Each epoch's wall time goes into
    ``history["epoch_seconds"]``. Returns (model, best accuracy, seconds of epochs run here).
    """
    cfg, run_dir, out, history = p.cfg, p.run_dir, p.write_dir, p.history
    first, last = (cfg.float_epochs, cfg.epochs) if qat_phase else (0, cfg.float_epochs)
    ckpt_name = QAT_CHECKPOINTS if qat_phase else CHECKPOINTS
    best_path = out / (FLOAT_BEST_WEIGHTS if cfg.qat and not qat_phase else BEST_WEIGHTS)
    latest = _latest(run_dir / ckpt_name) if p.resume else None
    if qat_phase:
        keras.utils.set_random_seed(cfg.seed + 1)  # same start whether resumed or not
    with p.strategy.scope():
        # fresh: else the checkpoint overwrites weights and ranges
        model, schedule = _phase_model(qat_phase, p, fresh=not latest)
        optimizer = keras.optimizers.Adam(schedule)
        model.compile(
            optimizer=optimizer,
            loss=make_loss(len(p.labels), cfg.label_smoothing),
            metrics=["accuracy"],
        )
        epoch_var = tf.Variable(first, dtype=tf.int64, trainable=False, name="epoch")
        best_var = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_val_accuracy")
        # The weight average is the float phase's: QAT fine-tunes a few epochs at a low rate.
        average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay and not qat_phase else None
        ckpt = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=epoch_var,
            best=best_var,
            **(average.checkpoint_items() if average else {}),
        )
    # Every worker saves (reading replicated variables may be a collective op); only the
    # chief's copy is in the run folder.
    manager = tf.train.CheckpointManager(ckpt, str(out / ckpt_name), max_to_keep=2)
    if latest:
        ckpt.restore(latest).assert_existing_objects_matched()
        logging.info("resuming %s after epoch %d", run_dir, int(epoch_var.numpy()))
    done = int(epoch_var.numpy())
    if qat_phase and not latest:
        # The calibrated fake-quant model is a candidate too: QAT keeps it unless an epoch beats
        # it on validation, so fine-tuning never hands back a model worse than where it started.
        _, start_acc = model.evaluate(p.val_ds, verbose=0)
        best_var.assign(float(start_acc))
        _save_weights(model, best_path)
        atomic.write_json(out / QAT_START, {"val_accuracy": float(start_acc)})
        logging.info("QAT start (calibrated ranges): val accuracy %.2f %%", 100 * start_acc)
    for k in list(history):
        history[k] = history[k][:done]
    logging.info(
        "model %s%s: %d parameters", cfg.model, " (QAT)" if qat_phase else "", model.count_params()
    )
    ran = 0.0
    # verbose 1: tfkws's line per epoch; 2: also Keras's own per-epoch output.
    epoch_line = [EpochLine(cfg.epochs, " (QAT)" if qat_phase else "")] if p.verbose else []
    distributed = worker_index(p.strategy)[1] > 1
    # First in the list: it adds the average's validation to the logs the others see.
    averaging = [average.callback(p.val_ds)] if average else []
    for epoch in range(done, last):
        t = time.time()
        h = model.fit(
            p.train_ds_for(epoch),
            validation_data=p.val_ds,
            steps_per_epoch=p.steps_per_epoch if distributed else None,
            epochs=epoch + 1,
            initial_epoch=epoch,
            callbacks=[*averaging, p.tensorboard, *epoch_line],
            verbose=2 if p.verbose >= 2 else 0,
        )
        for k, v in h.history.items():
            history.setdefault(k, []).append(float(v[-1]))
        history.setdefault("lr", []).append(float(schedule(optimizer.iterations - 1)))
        history.setdefault("epoch_seconds", []).append(round(time.time() - t, 2))
        ran += history["epoch_seconds"][-1]
        # With a weight average, the averaged weights are the candidates: validated, kept as best.
        val_acc = history["ema_val_accuracy" if average else "val_accuracy"][-1]
        if val_acc > float(best_var.numpy()):
            best_var.assign(val_acc)
            with average.swapped() if average else contextlib.nullcontext():
                _save_weights(model, best_path)
        epoch_var.assign(epoch + 1)
        # History before checkpoint: a kill between them re-runs the epoch, never skips its record.
        atomic.write_json(out / HISTORY, history)
        manager.save(checkpoint_number=epoch + 1)
        if out == run_dir:  # plots are for people: the chief's only
            plots.plot_learning_curves(history, out / "plots" / "learning_curves.png")
        barrier(p.strategy)  # the chief's files of this epoch are complete for every worker
    return model, best_var, ran


def _save_weights(model: keras.Model, path: Path) -> None:
    """``save_weights`` to a temp .h5 beside ``path``, then rename (never a half-written file)."""
    tmp = path.with_name(f".{path.stem}.tmp.h5")
    model.save_weights(str(tmp))
    os.replace(tmp, path)
