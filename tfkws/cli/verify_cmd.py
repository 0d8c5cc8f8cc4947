"""``tfkws verify``: TFLM vs LiteRT parity and agreement with the float model."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("model", None, "int8 .tflite exported by tfkws.", fv, required=True)
    common.define_path(
        "data", None, "Clips to verify on (default: the source run's validation split).", fv
    )
    flags.DEFINE_string(
        "split", None, "Split of --data (default validation, else all).", flag_values=fv
    )
    flags.DEFINE_integer("max_clips", 200, "Number of clips.", flag_values=fv)
    flags.DEFINE_float(
        "min_within_1lsb",
        0.999,
        "Pass when this share of outputs is within 1 LSB; below it, pass only if every op "
        "checked on its own is within 1 LSB and top-1 agrees on --min_top1 of the clips.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "min_top1",
        0.99,
        "Top-1 agreement TFLM vs LiteRT needed below --min_within_1lsb.",
        flag_values=fv,
    )
    common.define_path("json", None, "Write the report here.", fv)


def run(fv: flags.FlagValues) -> int:
    import json

    from tfkws import atomic
    from tfkws.verification.parity import verdict
    from tfkws.verification.verify_model import verify_tflite

    rep = verify_tflite(fv.model, fv.data, fv.split, fv.max_clips)
    print(json.dumps(rep, indent=2, sort_keys=True))
    if fv.json:
        atomic.write_json(fv.json, rep)
    ok, why = verdict(rep, fv.min_within_1lsb, fv.min_top1)
    print(f"tfkws verify: {'OK' if ok else 'FAIL'}: {why}")
    return 0 if ok else 1
