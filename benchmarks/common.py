"""What every benchmark does: train a registered model, export it, measure it as deployed.

Train (``tfkws.training.train``), export (fold -> int8 -> .tflite + metadata), then measure what
the device would see: accuracy of the int8 model in the TFLM interpreter, parameters (trained and
deployed), MACs, minimum TFLM arena (bisected), flash (flatbuffer bytes), TFLM host latency.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's runtime C++ log lines (tfkws.quiet)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(2, str(REPO / "tests"))  # firmware_gen_models.convert: keras -> int8 .tflite

import numpy as np  # noqa: E402
import provenance  # noqa: E402

from tfkws import quiet  # noqa: E402

quiet.import_tensorflow()  # before any module that imports it: without its load-time C++ lines

from tfkws.data.example import UNKNOWN_LABEL  # noqa: E402
from tfkws.data.kws_dataset import KwsDataset  # noqa: E402
from tfkws.data.subsample import subsample  # noqa: E402, F401  (benchmarks call common.subsample)
from tfkws.features.config import FeatureConfig  # noqa: E402
from tfkws.quantization.ptq import REPRESENTATIVE_CLIPS  # noqa: E402
from tfkws.runs.config import TrainConfig  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "arabic_speech_commands"
DEFAULT_NOISE = REPO.parent / "shared" / "data" / "speech_commands_noise"
RESULTS = REPO / "benchmarks" / "results"
WORK = REPO / "benchmarks" / "runs"  # run folders (git-ignored)
SPEC_FIELDS = ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins")


def command_line() -> str:
    """The command that produced a result, as a user would type it from the repo root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def add_common_args(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    noise = DEFAULT_NOISE if DEFAULT_NOISE.exists() else None
    p.add_argument("--noise_dir", type=Path, default=noise)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--work_dir", type=Path, default=None, help="run folders (benchmarks/runs/..)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch_size", type=int, default=100)
    p.add_argument("--learning_rate", type=float, default=0.005)
    p.add_argument("--num_calibration", type=int, default=REPRESENTATIVE_CLIPS)
    p.add_argument("--max_clips", type=int, default=0, help="subsample each split (smoke runs)")
    p.add_argument("--latency_runs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spec_augment",
        default="0,0,0,0",
        help="SpecAugment: time masks, max frames, freq masks, max bins",
    )
    p.add_argument(
        "--speed_perturb", type=float, default=0.0, help="resample factor range 1 +/- this"
    )
    p.add_argument(
        "--teacher",
        default="",
        help="knowledge distillation: comma-separated trained run folders (same features/labels)",
    )
    p.add_argument("--distill_weight", type=float, default=TrainConfig.distill_weight)
    p.add_argument("--distill_temperature", type=float, default=TrainConfig.distill_temperature)
    p.add_argument(
        "--ema_decay",
        type=float,
        default=TrainConfig.ema_decay,
        help="validate and export a moving average of the weights (e.g. 0.999; 0 = off)",
    )
    p.add_argument(
        "--synth_keywords",
        type=int,
        default=0,
        help="espeak-ng Arabic clips per keyword added to training (tfkws.data.arabic_keywords; "
        "Arabic Speech Commands only)",
    )
    p.add_argument("--synth_speakers", type=int, default=200, help="their synthetic talkers")
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--verbose",
        type=int,
        default=1,
        help="0 quiet, 1 a tfkws line per epoch, 2 also Keras's own epoch output",
    )
    p.add_argument(
        "--features",
        default="",
        help="feature config overrides, e.g. kind=logmel,window_stride_ms=10 (default: micro "
        "frontend, 30 ms window, 20 ms stride, 40 channels)",
    )


def feature_config(args: argparse.Namespace) -> FeatureConfig:
    """The benchmark's features: the defaults with ``--features`` key=value overrides."""
    from tfkws.cli.common import parse_params

    return FeatureConfig.from_dict(FeatureConfig().to_dict() | parse_params(args.features))


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data": str(args.data),
        "noise_dir": str(args.noise_dir) if args.noise_dir else None,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "num_calibration": args.num_calibration,
        "max_clips": args.max_clips,
        "latency_runs": args.latency_runs,
        "seed": args.seed,
        "speed_perturb": args.speed_perturb,
        "spec_augment": dict(zip(SPEC_FIELDS, map(int, args.spec_augment.split(",")), strict=True)),
        "teachers": _teachers(args),
        "distill_weight": args.distill_weight,
        "distill_temperature": args.distill_temperature,
        "ema_decay": args.ema_decay,
        "features": feature_config(args).to_dict(),
        "synth_keywords": args.synth_keywords,
        "synth_speakers": args.synth_speakers,
    }


def features_note(s: dict[str, Any]) -> str:
    """'micro-frontend features (49x40, 30 ms window, 20 ms stride)' from the run's config."""
    fc = FeatureConfig.from_dict(s["features"])
    kind = {"microfrontend": "micro-frontend", "logmel": "log-mel", "mfcc": "MFCC"}[fc.kind]
    frames, feats = fc.shape
    return (
        f"{kind} features ({frames}x{feats}, {fc.window_size_ms} ms window, "
        f"{fc.window_stride_ms} ms stride)"
    )


def extra_augment_note(s: dict[str, Any]) -> str:
    """Speed perturbation and SpecAugment as the run used them ('' when off)."""
    out = ""
    if s.get("speed_perturb"):
        out += f", speed perturbation (resampling by 1 ± {s['speed_perturb']:g})"
    spec = s.get("spec_augment") or {}
    if any(spec.values()):
        out += (
            f", SpecAugment ({spec['time_masks']} time masks of up to {spec['time_mask_frames']} "
            f"frames, {spec['freq_masks']} channel masks of up to {spec['freq_mask_bins']} "
            "channels)"
        )
    if s.get("synth_keywords"):
        out += (
            f", plus {s['synth_keywords']} espeak-ng Arabic clips per keyword in training "
            f"({s['synth_speakers']} synthetic talkers; `tfkws.data.arabic_keywords.ASC_TEXTS`, "
            "the keywords whose text a real-data model recognises)"
        )
    if s.get("teachers"):
        out += (
            ", distilled from "
            + ", ".join(f"`{'/'.join(Path(t).parts[-2:])}`" for t in s["teachers"])
            + " (weight "
            f"{s['distill_weight']:g}, temperature {s['distill_temperature']:g})"
        )
    return out


def vocabulary_tag(words: Iterable[str]) -> str:
    """``_kwN_HASH`` for a device vocabulary of N words (the hash tells vocabularies of N apart,
    whatever their order): in the names of its runs, streams and synthetic clips."""
    words = sorted(words)
    digest = hashlib.sha1(",".join(words).encode()).hexdigest()[:6]
    return f"_kw{len(words)}_{digest}"


def with_synth_keywords(ds: KwsDataset, args: argparse.Namespace) -> KwsDataset:
    """``ds`` with ``--synth_keywords`` espeak-ng Arabic clips per keyword added to its training
    split (synthesised once into ``WORK/synth_keywords_...``, reused; validation stays real)."""
    import dataclasses

    from tfkws.data.arabic_keywords import ASC_TEXTS, synthesize_keywords
    from tfkws.data.synth import keyword_examples

    n = args.synth_keywords
    if not n:
        return ds
    texts = {w: t for w, t in ASC_TEXTS.items() if w in ds.labels}
    missing = sorted(set(ASC_TEXTS) - set(ds.labels))
    if not texts or (missing and UNKNOWN_LABEL not in ds.labels):
        sys.exit(f"error: --synth_keywords: {args.data} has no label(s) {missing}")
    folder = WORK / f"synth_keywords_seed{args.seed}_n{n}_s{args.synth_speakers}"
    if missing:  # a device vocabulary (its other words are _unknown_): its words only
        folder = folder.with_name(folder.name + vocabulary_tag(texts))
    if not (folder / "synth_config.json").exists():
        synthesize_keywords(
            folder, n, args.synth_speakers, seed=args.seed, texts=texts, noise_dir=args.noise_dir
        )
    extra = keyword_examples(folder)
    splits = dict(ds.splits)
    splits["training"] = list(splits.get("training", [])) + extra
    print(f"training: {len(extra)} synthetic clips added from {folder}")
    return dataclasses.replace(ds, splits=splits)


def write_results(
    name: str, args: argparse.Namespace, markdown: Any, extra_settings: dict | None = None, **fields
) -> dict[str, Any]:
    """``results/<name>.json`` + ``.md`` (atomically) with the command, machine and settings.

    ``markdown`` renders the finished results dict; ``fields`` are the benchmark's own entries.
    """
    return write_table(
        name,
        args.out,
        markdown,
        settings=settings(args) | (extra_settings or {}),
        **fields,
    )


def write_table(name: str, out: str | Path, markdown: Any, **fields) -> dict[str, Any]:
    """``out/<name>.json`` + ``.md`` (atomically): the command, machine and commit, then
    ``fields``; ``markdown`` renders the finished dict (also printed). For benchmarks without
    the shared training settings (:func:`write_results` adds those)."""
    from tfkws import __version__, atomic

    results = {
        "benchmark": name,
        "command": command_line(),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "tfkws_version": __version__,
        **provenance.current(),
        **fields,
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic.write_json(Path(out) / f"{name}.json", results)
    text = markdown(results)
    atomic.write_text(Path(out) / f"{name}.md", text)
    print(text)
    return results


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float logits (Keras models here end in logits)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tflm_latency_ms(tflite: bytes, runs: int, seed: int) -> dict[str, float]:
    """Median / min wall time of one ``invoke`` in the TFLM Python interpreter (host CPU)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    shape = interp.get_input_details(0)["shape"]
    x = np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)
    interp.set_input(x, 0)
    for _ in range(3):  # warm-up
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def deployed_cost(tflite: bytes, latency_runs: int, seed: int) -> dict[str, Any]:
    from firmware_gen.arena import measure_arena
    from firmware_gen.layers import layer_table, total_macs
    from firmware_gen.model import parse_model

    info = parse_model(tflite)
    rows = layer_table(info)
    arena = measure_arena(tflite)
    return {
        "macs": total_macs(rows),
        "weight_bytes": int(sum(r["weight_bytes"] for r in rows)),
        "flash_bytes": len(tflite),
        "arena_bytes": int(arena.min_bytes),
        "latency": tflm_latency_ms(tflite, latency_runs, seed),
        "operators": len(rows),
    }


def _teachers(args: argparse.Namespace) -> list[str]:
    """--teacher run folders, made absolute (the run config records where they were)."""
    return [str(Path(t).resolve()) for t in args.teacher.split(",") if t]


def train_run(
    model: str, params: dict[str, Any], ds: KwsDataset, args: argparse.Namespace, run_dir: Path
) -> dict[str, Any]:
    """Train ``model`` into ``run_dir`` with the benchmarks' shared settings (all of them)."""
    from tfkws.runs.config import TrainConfig
    from tfkws.training.trainer import train

    cfg = TrainConfig(
        model=model,
        model_params=params,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        speed_perturb=args.speed_perturb,
        teachers=_teachers(args),
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        ema_decay=args.ema_decay,
        **dict(zip(SPEC_FIELDS, map(int, args.spec_augment.split(",")), strict=True)),
    )
    return train(
        ds,
        feature_config(args),
        cfg,
        run_dir,
        resume=args.resume,
        data_path=str(args.data),
        noise_dir=str(args.noise_dir) if args.noise_dir else None,
        test_split=None,
        verbose=args.verbose,
    )


def _tag_value(v: Any) -> str:
    """A parameter value as a folder-name piece: [24, 24, 32] -> 24-24-32 (2, True: as is)."""
    return re.sub(r"[^\w.]+", "-", str(v)).strip("-")


def bench_one(
    row: str, model: str, params: dict[str, Any], ds: KwsDataset, args: argparse.Namespace
) -> dict[str, Any]:
    from tfkws.conversion.export import export_run
    from tfkws.folding.fold import fold_model
    from tfkws.runs.model import load_trained_model
    from tfkws.verification.evaluate import evaluate_tflite

    tag = model + "".join(f"_{k}{_tag_value(v)}" for k, v in sorted(params.items()))
    run_dir = Path(args.work_dir) / tag
    t0 = time.time()
    trained = train_run(model, params, ds, args, run_dir)
    keras_model, _ = load_trained_model(run_dir)
    trainable = int(sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights))
    deployed_params = int(fold_model(keras_model).count_params())
    tflite_path = run_dir / f"{tag}.tflite"
    exported = export_run(
        run_dir, tflite_path, num_calibration=args.num_calibration, seed=args.seed
    )
    tflite = tflite_path.read_bytes()
    evaluation = evaluate_tflite(
        tflite_path, str(args.data), split="validation", max_clips=args.max_clips, seed=args.seed
    )
    return {
        "row": row,
        "model": model,
        "model_params": params,
        "trained_params": trainable,
        "deployed_params": deployed_params,
        "float_val_accuracy": trained["val"]["accuracy"],
        "int8_tflm_val_accuracy": evaluation["accuracy"],
        "val_clips": int(evaluation["num_clips"]),
        "fold_max_abs_diff": exported.fold_max_abs_diff,
        "ops": exported.ops,
        **deployed_cost(tflite, args.latency_runs, args.seed),
        "train_seconds": trained["train_seconds"],
        "tflite": str(tflite_path),
        "seconds": round(time.time() - t0, 1),
    }


def on_target_m4(tflite_path: Path, name: str) -> dict[str, Any]:
    """Arena and instructions per Invoke of TFLM + CMSIS-NN on Cortex-M4 (QEMU), via firmware_gen
    (seeded random int8 inputs for its parity check: instructions depend on shapes only)."""
    from firmware_gen.pipeline import generate

    with tempfile.TemporaryDirectory(prefix=f"{name}_bench_") as tmp:
        res = generate(
            tflite_path,
            Path(tmp) / "out",
            name=name,
            on_target=["m4"],
            kernels=["cmsis-nn"],
            tflm_library="model",
            progress=lambda m: print(f"  {m}", flush=True),
        )
    v = res.report["on_target"]["variants"][0]
    return {
        "cpu": v["cpu"],
        "kernels": v["kernels"],
        "arena_min_bytes": v["arena"]["min_bytes"],
        "instructions_per_invoke": v["instructions"]["per_invoke"],
        "parity_max_abs_diff": v["parity"]["max_abs_diff"],
        "flash_bytes": v["flash"]["flash_bytes"],
    }
