"""``tfkws demo``: the whole pipeline on synthesised speech, no data, no network."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("out", "tfkws_demo", "Output folder.", fv)
    flags.DEFINE_enum(
        "size", "default", ["tiny", "default", "large"], "Synthetic dataset size.", flag_values=fv
    )
    flags.DEFINE_integer("epochs", 0, "Training epochs (0 = the demo default).", flag_values=fv)
    flags.DEFINE_string("model", "ds_cnn", "Registered model.", flag_values=fv)
    flags.DEFINE_string("params", "", "Model params: key=value,...", flag_values=fv)
    common.define_path(
        "real_data",
        None,
        "Also evaluate on this real dataset (e.g. ../shared/data/speech_commands_test_dev).",
        fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed.", flag_values=fv)
    flags.DEFINE_bool(
        "resume", False, "Reuse finished steps in --out (synth, training).", flag_values=fv
    )


def run(fv: flags.FlagValues) -> int:
    from tfkws.demo import run_demo

    run_demo(
        fv.out,
        size=fv.size,
        epochs=fv.epochs or None,
        model=fv.model,
        params=common.parse_params(fv.params),
        real_data=fv.real_data,
        seed=fv.seed,
        resume=fv.resume,
    )
    return 0
