"""``tfkws zoo list`` / ``tfkws zoo get NAME --out DIR``: pretrained models with their cards.

``get`` copies the int8 ``.tflite``, its metadata and model card into ``--out`` and generates the
firmware files for it there (``firmware/kws_model_data.{h,cc}``, ``kws_op_resolver.h``, the arena
and flash report against ``--target``), so a firmware project can start from a trained model.
"""

from __future__ import annotations

import json

from absl import flags

from tfkws.cli import common
from tfkws.errors import TfkwsError

ACTIONS = ("list", "get")
USAGE = "usage: tfkws zoo list | tfkws zoo get NAME --out DIR [--target T ...]"


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("out", None, "get: output folder (default: ./NAME).", fv)
    flags.DEFINE_multi_string(
        "target",
        None,
        "get: targets for the firmware report (default: nrf52840, stm32f746, stm32h743, "
        "alif_e7_he); repeat or comma-separate.",
        flag_values=fv,
    )
    flags.DEFINE_string("name", "kws", "get: C name prefix of the firmware files.", flag_values=fv)
    flags.DEFINE_bool("json", False, "list: print the cards as JSON.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    return run_with_args(fv, [])


def run_with_args(fv: flags.FlagValues, args: list[str]) -> int:
    from tfkws.zoo.catalog import list_models

    if not args or args[0] not in ACTIONS:
        got = " ".join(args) or "no action"
        raise TfkwsError(f"expected one action ({', '.join(ACTIONS)}), got {got}; {USAGE}")
    if args[0] == "list":
        if len(args) != 1:
            raise TfkwsError(f"zoo list takes no name; {USAGE}")
        models = list_models()
        if fv.json:
            print(json.dumps({m.name: m.card for m in models}, indent=2, sort_keys=True))
            return 0
        if not models:
            print("the zoo is empty")
        from tfkws.zoo.catalog import summary_line

        for m in models:
            print(summary_line(m))
        return 0
    if len(args) != 2:
        raise TfkwsError(f"zoo get takes one model name; {USAGE}")
    return _get(fv, args[1])


def _get(fv: flags.FlagValues, name: str) -> int:
    from pathlib import Path

    from tfkws.firmware import DEFAULT_TARGETS, generate_firmware
    from tfkws.zoo.catalog import TFLITE, copy_model, get_model

    model = get_model(name)
    out = Path(fv.out or common.absolute(name))
    targets = [t for item in (fv.target or DEFAULT_TARGETS) for t in item.split(",") if t]
    files = copy_model(model, out)
    print(f"{name}: {model.card['title']}")
    for f in files:
        print(f"  {f}")
    print(generate_firmware(out / TFLITE, out / "firmware", targets=targets, name=fv.name))
    if model.supernet:
        print(
            f"supernet: tfkws slim select --run {out / 'supernet'} --data DATA --target BOARD "
            "--out_dir SEL cuts the most accurate width that fits a board"
        )
    return 0
