"""``tfkws train``: train a registered model; checkpoints every epoch, ``--resume`` continues."""

from __future__ import annotations

import json

from absl import flags

from tfkws.cli import common
from tfkws.runs.config import TrainConfig

DEFAULT_KEYWORDS = "yes,no,up,down,left,right,on,off,stop,go"


def define_flags(fv: flags.FlagValues) -> None:
    d = TrainConfig()
    common.define_path(
        "data",
        None,
        "Dataset: a Speech Commands folder, a CSV (file,class) or a "
        "folder with train.csv/val.csv[/test.csv].",
        fv,
        required=True,
    )
    common.define_path("noise_dir", None, "Extra background-noise folder for augmentation.", fv)
    flags.DEFINE_enum(
        "mode",
        "12class",
        ["12class", "all"],
        "Speech Commands layout: 10 keywords + "
        "_unknown_ + _silence_, or every word folder a class.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "keywords",
        DEFAULT_KEYWORDS,
        "The model's keywords (comma-separated): a Speech Commands folder's for --mode=12class "
        "(default: the ten); given with a CSV dataset, a device vocabulary: the dataset's other "
        "words become _unknown_ (default: every class of the CSV).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "keyword_repeat",
        1,
        "Use each keyword training clip this many times, augmented afresh each time: weighs "
        "the keywords up against a large _unknown_ (a --keywords vocabulary of one word).",
        lower_bound=1,
        flag_values=fv,
    )
    common.define_feature_flags(fv)
    flags.DEFINE_string("model", d.model, "Registered model (tfkws models).", flag_values=fv)
    flags.DEFINE_string("params", "", "Model params: key=value,... or JSON.", flag_values=fv)
    flags.DEFINE_integer("epochs", d.epochs, "Epochs.", flag_values=fv)
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size.", flag_values=fv)
    flags.DEFINE_float("lr", d.learning_rate, "Peak learning rate (Adam).", flag_values=fv)
    flags.DEFINE_enum(
        "lr_schedule",
        d.lr_schedule,
        ["cosine", "constant", "step"],
        "Schedule after warm-up.",
        flag_values=fv,
    )
    flags.DEFINE_integer("warmup_epochs", d.warmup_epochs, "Linear warm-up epochs.", flag_values=fv)
    flags.DEFINE_float("label_smoothing", d.label_smoothing, "Label smoothing.", flag_values=fv)
    flags.DEFINE_float(
        "ema_decay",
        d.ema_decay,
        "Validate and export an exponential moving average of the weights with this decay per "
        "batch (e.g. 0.999; 0 = off).",
        flag_values=fv,
    )
    flags.DEFINE_bool("augment", d.augment, "Time shift + background noise.", flag_values=fv)
    flags.DEFINE_integer("time_shift_ms", d.time_shift_ms, "Max time shift.", flag_values=fv)
    flags.DEFINE_float("noise_prob", d.noise_prob, "Probability of mixing noise.", flag_values=fv)
    flags.DEFINE_float("snr_db_min", d.snr_db_min, "Lowest SNR of mixed noise.", flag_values=fv)
    flags.DEFINE_float("snr_db_max", d.snr_db_max, "Highest SNR of mixed noise.", flag_values=fv)
    flags.DEFINE_float(
        "speed_perturb",
        d.speed_perturb,
        "Resample each training clip by a random factor in 1 +/- this (tempo and pitch; 0 = off).",
        flag_values=fv,
    )
    flags.DEFINE_integer("time_masks", 0, "SpecAugment: time stripes per clip.", flag_values=fv)
    flags.DEFINE_integer("time_mask_frames", 0, "SpecAugment: widest time stripe.", flag_values=fv)
    flags.DEFINE_integer("freq_masks", 0, "SpecAugment: channel bands per clip.", flag_values=fv)
    flags.DEFINE_integer("freq_mask_bins", 0, "SpecAugment: widest band.", flag_values=fv)
    flags.DEFINE_integer("seed", d.seed, "Seed: same data + seed -> same weights.", flag_values=fv)
    flags.DEFINE_enum(
        "strategy",
        d.strategy,
        ["auto", "cpu", "mirrored", "multiworker"],
        "tf.distribute strategy: mirrored = every GPU of this machine; multiworker = one "
        "process per machine, the cluster in TF_CONFIG (README: Scaling out). --batch_size is "
        "the global batch, split between the replicas.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "clip_store",
        "auto",
        ["auto", "memory", "disk"],
        "Where decoded clips are held: memory, or disk (a cache under --cache_dir, built once, "
        "bounded memory for any dataset size); auto: disk for splits over 20,000 clips. "
        "Same weights either way.",
        flag_values=fv,
    )
    common.define_path(
        "cache_dir",
        None,
        "Clip cache folder for --clip_store disk (default: $TFKWS_CACHE_DIR, else "
        "$XDG_CACHE_HOME/tfkws, else ~/.cache/tfkws).",
        fv,
    )
    flags.DEFINE_bool(
        "qat",
        False,
        "Quantization-aware training: the last --qat_epochs epochs fine-tune the folded model "
        "with int8 fake-quant (export then uses the learnt ranges).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "qat_epochs",
        None,
        "QAT epochs with --qat (default: a quarter of --epochs).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "qat_lr", None, "QAT peak learning rate (default: --lr / 100).", flag_values=fv
    )
    common.define_distill_flags(fv)
    common.define_path("out", None, "Run folder.", fv, required=True)
    flags.DEFINE_bool(
        "resume", False, "Continue the run in --out from its last checkpoint.", flag_values=fv
    )


def qat_settings(fv: flags.FlagValues) -> dict:
    """TrainConfig QAT fields from --qat/--qat_epochs/--qat_lr (QAT flags without --qat: error)."""
    from tfkws.errors import TfkwsError

    if not fv.qat:
        if fv.qat_epochs is not None or fv.qat_lr is not None:
            raise TfkwsError("--qat_epochs and --qat_lr need --qat")
        return {}
    epochs = fv.qat_epochs if fv.qat_epochs is not None else max(1, round(fv.epochs / 4))
    return {"qat": True, "qat_epochs": epochs, "qat_learning_rate": fv.qat_lr}


def run(fv: flags.FlagValues) -> int:
    from tfkws.cli import fast_mode
    from tfkws.data.dataset import open_dataset
    from tfkws.data.subsample import subsample
    from tfkws.data.vocabulary import repeat_keywords
    from tfkws.training.strategy import make_strategy
    from tfkws.training.trainer import train

    # First, before any TensorFlow op: collective ops are configured at program startup.
    strategy = make_strategy(fv.strategy) if fv.strategy == "multiworker" else None
    epochs = fv.epochs
    if fast_mode.fast():
        epochs = min(epochs, fast_mode.FAST_EPOCHS)
        fast_mode.announce(f"{epochs} epoch(s) on at most {fast_mode.FAST_CLIPS} clips per split")
    cfg = TrainConfig(
        model=fv.model,
        model_params=common.parse_params(fv.params),
        epochs=epochs,
        batch_size=fv.batch_size,
        learning_rate=fv.lr,
        lr_schedule=fv.lr_schedule,
        warmup_epochs=fv.warmup_epochs,
        label_smoothing=fv.label_smoothing,
        ema_decay=fv.ema_decay,
        seed=fv.seed,
        augment=fv.augment,
        time_shift_ms=fv.time_shift_ms,
        noise_prob=fv.noise_prob,
        snr_db_min=fv.snr_db_min,
        snr_db_max=fv.snr_db_max,
        speed_perturb=fv.speed_perturb,
        time_masks=fv.time_masks,
        time_mask_frames=fv.time_mask_frames,
        freq_masks=fv.freq_masks,
        freq_mask_bins=fv.freq_mask_bins,
        strategy=fv.strategy,
        **common.distill_settings(fv),
        **qat_settings(fv),
    )
    features = common.feature_config_from_flags(fv)
    from tfkws.models.catalog import resolve_params

    resolve_params(cfg.model, cfg.model_params)  # fail fast on a bad model or param
    keywords = common.keywords_from_flag(fv.keywords)
    ds = open_dataset(
        fv.data,
        mode=fv.mode,
        keywords=keywords,
        seed=fv.seed,
        noise_dir=fv.noise_dir,
        vocabulary=keywords if fv["keywords"].present else None,
    )
    if fast_mode.fast():
        ds = subsample(ds, fast_mode.FAST_CLIPS, fv.seed)
    ds = repeat_keywords(ds, fv.keyword_repeat)
    results = train(
        ds,
        features,
        cfg,
        fv.out,
        resume=fv.resume,
        data_path=fv.data,
        dataset_mode=fv.mode,
        noise_dir=fv.noise_dir,
        verbose=2 if fv.verbose else 1,
        strategy=strategy,
        clip_store=fv.clip_store,
        cache_dir=fv.cache_dir,
    )
    summary = {k: results[k] for k in ("model", "params", "best_val_accuracy", "train_seconds")}
    for split in ("val", "test"):
        if split in results:
            summary[f"{split}_accuracy"] = results[split]["accuracy"]
    print(json.dumps(summary, indent=2))
    print(f"run folder: {fv.out} (results.json, plots/, logs/ for TensorBoard, best_weights.h5)")
    return 0
