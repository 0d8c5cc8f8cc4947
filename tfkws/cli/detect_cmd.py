"""``tfkws detect``: keyword detections in a recording of any length, as the device finds them."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    from tfkws.streaming.detect_audio import DEFAULT_THRESHOLD, StreamSettings

    d = StreamSettings()
    common.define_path(
        "model", None, "int8 .tflite exported by tfkws (metadata beside it).", fv, required=True
    )
    common.define_path("audio", None, "WAV/FLAC recording of any length.", fv, required=True)
    common.define_path("json", None, "Write the detections and settings here.", fv)
    flags.DEFINE_float(
        "threshold",
        DEFAULT_THRESHOLD,
        "Smoothed probability a keyword must reach to fire.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "thresholds",
        "",
        "Per-keyword thresholds label=p,... (only these keywords fire; overrides --threshold).",
        flag_values=fv,
    )
    common.define_stream_timing_flags(fv)
    flags.DEFINE_string(
        "gate",
        "auto",
        "Labels that block detection while they lead: auto (those starting with _), none, "
        "others (every label --thresholds leaves out: a model of many words listening for a "
        "few, the rest blocking like _unknown_), or a comma list.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "frontend",
        d.frontend,
        ["tf", "tflm"],
        "Feature frontend: tf (TensorFlow's audio_microfrontend op, as in training) or tflm "
        "(TFLM's C library built for this host: the device's code; needs a C compiler and the "
        "TFLM tree, $TFLM_ROOT).",
        flag_values=fv,
    )
    common.define_path(
        "detector_spec",
        None,
        "Also write the detector spec JSON (firmware-gen --detector SPEC makes NAME_detector.h).",
        fv,
    )


def _thresholds(text: str) -> dict[str, float]:
    from tfkws.errors import TfkwsError

    out = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        label, sep, value = item.partition("=")
        try:
            out[label.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise TfkwsError(f"--thresholds item {item!r} is not label=probability")
    return out


def run(fv: flags.FlagValues) -> int:
    from tfkws import atomic
    from tfkws.errors import TfkwsError
    from tfkws.streaming.detect_audio import StreamSettings, detect_audio
    from tfkws.streaming.detector import GATE_OTHERS

    thresholds = _thresholds(fv.thresholds)
    gate = None  # auto
    if fv.gate == "none":
        gate = ()
    elif fv.gate == GATE_OTHERS:
        if not thresholds:
            raise TfkwsError("--gate others needs --thresholds (the labels that fire)")
        gate = GATE_OTHERS
    elif fv.gate != "auto":
        gate = tuple(g.strip() for g in fv.gate.split(",") if g.strip())
    settings = StreamSettings(
        hop_ms=fv.hop_ms,
        smoothing_ms=fv.smoothing_ms,
        refractory_ms=fv.refractory_ms,
        threshold=thresholds or fv.threshold,
        gate=gate,
        frontend=fv.frontend,
    )
    rep = detect_audio(fv.model, fv.audio, settings)
    for d in rep["detections"]:
        print(f"{d['time_s']:10.3f} s  {d['label']:<12} {d['score']:.3f}")
    print(
        f"{len(rep['detections'])} detection(s) in {rep['duration_s']:.2f} s of {fv.audio} "
        f"({rep['invokes']} Invokes in TFLM, every {rep['hop_ms']} ms)"
    )
    if fv.json:
        atomic.write_json(fv.json, rep)
        print(f"report: {fv.json}")
    if fv.detector_spec:
        atomic.write_json(fv.detector_spec, rep["detector"])
        print(f"detector spec: {fv.detector_spec}")
    return 0
