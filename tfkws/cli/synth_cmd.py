"""``tfkws synth``: the embedded default dataset, synthesised offline with espeak-ng."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("out", None, "Output folder (Speech Commands layout).", fv, required=True)
    flags.DEFINE_string(
        "keywords", "yes,no,up,down,left,right,on,off,stop,go", "Keywords.", flag_values=fv
    )
    flags.DEFINE_enum(
        "size", "default", ["tiny", "default", "large"], "Dataset size preset.", flag_values=fv
    )
    common.define_path("noise_dir", None, "Extra real background noise to mix in.", fv)
    flags.DEFINE_integer("seed", 0, "Seed: same seed -> byte-identical files.", flag_values=fv)


def run(fv: flags.FlagValues) -> int:
    from tfkws.data.synth import synthesize_dataset

    out = synthesize_dataset(
        fv.out,
        keywords=common.keywords_from_flag(fv.keywords),
        size=fv.size,
        seed=fv.seed,
        noise_dir=fv.noise_dir,
    )
    print(f"synthetic dataset: {out}")
    return 0
