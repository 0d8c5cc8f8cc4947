"""``tfkws stream-eval``: false rejects and false accepts per hour of a model on long streams."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    from tfkws.streaming.stream_eval import RUNTIMES
    from tfkws.streaming.threshold_tuning import DEFAULT_MARGIN

    common.define_path(
        "model", None, "int8 .tflite exported by tfkws (metadata beside it).", fv, required=True
    )
    common.define_path("out", None, "Folder for stream_eval.json, det.png, streams.", fv)
    common.define_path(
        "data", None, "Build streams from this dataset's clips (CSV lists or SC folder).", fv
    )
    flags.DEFINE_string(
        "split", "validation", "Dataset split the keywords come from.", flag_values=fv
    )
    common.define_path(
        "english", None, "Speech Commands folder whose clips are non-keyword speech.", fv
    )
    common.define_path("noise_dir", None, "Background noise recordings (folder or file).", fv)
    flags.DEFINE_integer(
        "synth_words", 200, "espeak-ng words among the distractors.", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_keywords",
        0,
        "Keyword clips placed (seeded sample; 0: all of the split).",
        flag_values=fv,
    )
    flags.DEFINE_float("fa_hours", 1.0, "Hours of keyword-free audio to build.", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the streams.", flag_values=fv)
    common.define_path("audio", None, "A labelled stream instead of building: its audio.", fv)
    common.define_path("labels", None, "Its labels CSV (columns keyword,start,end; seconds).", fv)
    common.define_path_list(
        "fa_audio", [], "Keyword-free recordings for false accepts per hour.", fv
    )
    flags.DEFINE_float("target_fa", 0.5, "Target false accepts per hour.", flag_values=fv)
    flags.DEFINE_float(
        "threshold_margin",
        DEFAULT_MARGIN,
        "Per-keyword thresholds must clear the tuning half's false accepts by this much "
        "probability (against thresholds that fit the tuning audio too closely).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "tolerance_s",
        0.5,
        "A detection counts up to this long after the word's end.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "runtime",
        "tflm",
        RUNTIMES,
        "tflm: the device's kernels (slow in Python); litert: tens of times faster, may differ "
        "by an LSB now and then.",
        flag_values=fv,
    )
    common.define_stream_timing_flags(fv)


def run(fv: flags.FlagValues) -> int:
    from pathlib import Path

    from tfkws.cli import fast_mode
    from tfkws.conversion.export import load_metadata
    from tfkws.errors import TfkwsError
    from tfkws.streaming.detect_audio import StreamSettings
    from tfkws.streaming.stream_eval import (
        DET_PNG,
        REPORT,
        build_streams,
        dataset_recipe,
        read_stream,
        stream_eval,
        summary,
    )

    if not fv.out:
        raise TfkwsError("--out is required (folder for the report, DET plot and streams)")
    if bool(fv.data) == bool(fv.audio):
        raise TfkwsError("give either --data (build streams) or --audio with --labels")
    if fv.audio and not fv.labels:
        raise TfkwsError("--audio needs --labels (CSV with columns keyword,start,end)")
    meta = load_metadata(fv.model)
    labels = list(meta["labels"])
    free = list(fv.fa_audio)
    fa_hours, max_keywords, synth_words = fv.fa_hours, fv.max_keywords, fv.synth_words
    if fv.data and fast_mode.fast():
        fa_hours = min(fa_hours, fast_mode.FAST_FA_HOURS)
        max_keywords = fast_mode.capped(max_keywords, fast_mode.FAST_KEYWORDS)
        synth_words = min(synth_words, fast_mode.FAST_SYNTH_WORDS)
        fast_mode.announce(
            f"{max_keywords} keyword clips, {synth_words} espeak-ng words, {fa_hours:g} h "
            "keyword-free"
        )
    if fv.data:
        recipe = dataset_recipe(
            labels,
            fv.data,
            split=fv.split,
            english=fv.english,
            noise_dir=fv.noise_dir,
            synth_count=synth_words,
            max_keywords=max_keywords,
            seed=fv.seed,
            sample_rate=int(meta["feature_config"]["sample_rate"]),
        )
        print(
            f"building streams: {len(recipe.keywords)} keyword clips, {len(recipe.distractors)} "
            f"distractors, {len(recipe.noise_files)} noise files, {fa_hours:g} h keyword-free"
        )
        streams, built_free = build_streams(recipe, Path(fv.out) / "streams", fa_hours, fv.seed)
        free = built_free + free
    else:
        streams = [read_stream(fv.audio, fv.labels, labels)]
    settings = StreamSettings(
        hop_ms=fv.hop_ms, smoothing_ms=fv.smoothing_ms, refractory_ms=fv.refractory_ms
    )
    rep = stream_eval(
        fv.model,
        fv.out,
        streams,
        free,
        settings,
        runtime=fv.runtime,
        tolerance_s=fv.tolerance_s,
        target_fa_per_hour=fv.target_fa,
        threshold_margin=fv.threshold_margin,
    )
    print(summary(rep))
    print(f"report: {Path(fv.out) / REPORT}\nDET curve: {Path(fv.out) / DET_PNG}")
    return 0
