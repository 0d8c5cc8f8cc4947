"""Flag helpers shared by the subcommands."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from absl import flags

from tfkws.errors import TfkwsError
from tfkws.features.config import KINDS, FeatureConfig


class PathFlag(flags.Flag):
    """A flag naming files or folders (one, or a comma list): made absolute once, after parsing.

    Every stage below the command line then sees absolute paths, so none depends on the working
    directory (a relative ``--out`` once broke the demo's firmware step).
    """

    def __init__(self, name: str, default: Any, help_text: str, is_list: bool = False) -> None:
        self.is_list = is_list
        parser = flags.ListParser() if is_list else flags.ArgumentParser()
        serializer = flags.CsvListSerializer(",") if is_list else flags.ArgumentSerializer()
        super().__init__(parser, serializer, name, default, help_text)

    def flag_type(self) -> str:
        return "list of paths" if self.is_list else "path"


def define_path(
    name: str,
    default: str | None,
    help_text: str,
    fv: flags.FlagValues,
    required: bool = False,
) -> None:
    """A string flag that names a file or folder (absolute after :func:`resolve_path_flags`)."""
    flags.DEFINE_flag(PathFlag(name, default, help_text), fv, required=required)


def define_path_list(
    name: str, default: Sequence[str], help_text: str, fv: flags.FlagValues
) -> None:
    """A comma-list flag of files or folders (each absolute after :func:`resolve_path_flags`)."""
    flags.DEFINE_flag(PathFlag(name, list(default), help_text, is_list=True), fv)


def absolute(path: str | os.PathLike) -> str:
    """``path`` made absolute against the working directory (``~`` expanded, symlinks kept)."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def resolve_path_flags(fv: flags.FlagValues) -> None:
    """Make every :class:`PathFlag` of parsed ``fv`` absolute (unset flags stay unset)."""
    for name in list(fv):
        flag = fv[name]
        if not isinstance(flag, PathFlag) or not flag.value or flag.name != name:
            continue
        flag.value = [absolute(p) for p in flag.value] if flag.is_list else absolute(flag.value)


def define_verbose_flag(fv: flags.FlagValues) -> None:
    """``--verbose`` on every command (``tfkws.cli.main`` reads it before TensorFlow loads)."""
    flags.DEFINE_bool(
        "verbose",
        False,
        "Also show TensorFlow's own logs and Keras's progress (tfkws prints a line per epoch and "
        "progress with an ETA either way).",
        flag_values=fv,
        short_name="v",
    )


def define_stream_timing_flags(fv: flags.FlagValues) -> None:
    """--hop_ms, --smoothing_ms, --refractory_ms: how often the window model runs and how the
    detector smooths and rests (``tfkws detect`` and ``tfkws stream-eval``)."""
    from tfkws.streaming.detect_audio import StreamSettings

    d = StreamSettings()
    flags.DEFINE_integer(
        "hop_ms",
        None,
        "Time between full-window Invokes, a multiple of the feature stride (default: 2 strides).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "smoothing_ms", d.smoothing_ms, "Posterior smoothing window.", flag_values=fv
    )
    flags.DEFINE_integer(
        "refractory_ms", d.refractory_ms, "No detection this long after one.", flag_values=fv
    )


def parse_params(text: str) -> dict[str, Any]:
    """``"size=m,dropout=0.2"`` or a JSON object -> dict; values parsed as JSON when they can be."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise TfkwsError(f"--params is not valid JSON: {e}") from None
    out: dict[str, Any] = {}
    for item in text.split(","):
        if "=" not in item:
            raise TfkwsError(f"--params item {item!r} is not key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def define_feature_flags(fv: flags.FlagValues) -> None:
    d = FeatureConfig()
    flags.DEFINE_enum(
        "features",
        d.kind,
        list(KINDS),
        "Feature front end (microfrontend = what TFLM computes on the device).",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "num_channels", d.num_channels, "Filterbank / mel channels.", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_mfcc", d.num_mfcc, "MFCC coefficients (features=mfcc).", flag_values=fv
    )
    flags.DEFINE_integer("window_ms", d.window_size_ms, "Analysis window.", flag_values=fv)
    flags.DEFINE_integer("stride_ms", d.window_stride_ms, "Window stride.", flag_values=fv)
    flags.DEFINE_integer("clip_ms", d.clip_duration_ms, "Clip length.", flag_values=fv)
    flags.DEFINE_string(
        "frontend_params",
        "",
        "More feature settings as key=value (FeatureConfig fields), e.g. "
        "enable_pcan=false,min_signal_remaining=1.0: the micro frontend without its adaptive "
        "stages, so a stream's windows have a clip's features (streaming models).",
        flag_values=fv,
    )


def feature_config_from_flags(fv: flags.FlagValues) -> FeatureConfig:
    base = FeatureConfig(
        kind=fv.features,
        num_channels=fv.num_channels,
        num_mfcc=fv.num_mfcc,
        window_size_ms=fv.window_ms,
        window_stride_ms=fv.stride_ms,
        clip_duration_ms=fv.clip_ms,
    )
    extra = parse_params(fv.frontend_params)
    try:
        return FeatureConfig.from_dict(base.to_dict() | extra)
    except TfkwsError as e:
        raise TfkwsError(f"--frontend_params: {e}") from None


def keywords_from_flag(text: str) -> tuple[str, ...]:
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if not words:
        raise TfkwsError("--keywords is empty")
    return words


def define_distill_flags(fv: flags.FlagValues, what: str = "") -> None:
    """--teacher / --distill_weight / --distill_temperature (``tfkws.training.distill``)."""
    from tfkws.runs.config import TrainConfig

    d = TrainConfig()
    define_path_list(
        "teacher",
        [],
        f"{what}Knowledge distillation: trained float run folder(s) with the same features and "
        "labels whose mean softened predictions the model also learns from.",
        fv,
    )
    flags.DEFINE_float(
        "distill_weight",
        d.distill_weight,
        f"{what}Share of the loss from the teachers (the labels get the rest).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "distill_temperature",
        d.distill_temperature,
        f"{what}Distillation softmax temperature.",
        flag_values=fv,
    )


def distill_settings(fv: flags.FlagValues) -> dict[str, Any]:
    """TrainConfig distillation fields from the flags (teacher paths made absolute)."""
    from pathlib import Path

    return {
        "teachers": [str(Path(t).resolve()) for t in fv.teacher],
        "distill_weight": fv.distill_weight,
        "distill_temperature": fv.distill_temperature,
    }
