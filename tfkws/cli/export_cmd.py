"""``tfkws export``: fold, int8 PTQ, .tflite + metadata; optionally firmware C files."""

from __future__ import annotations

from absl import flags

from tfkws.cli import common
from tfkws.quantization.ptq import PTQ_CLIPS, REPRESENTATIVE_CLIPS


def define_flags(fv: flags.FlagValues) -> None:
    common.define_path("run", None, "Run folder written by tfkws train.", fv, required=True)
    common.define_path("out", None, "Output .tflite (default RUN/model_int8.tflite).", fv)
    flags.DEFINE_integer(
        "num_calibration",
        REPRESENTATIVE_CLIPS,
        "Representative clips drawn from the training split; int8 PTQ calibrates on "
        f"{PTQ_CLIPS} of them (the same clips a QAT run starts its ranges from).",
        flag_values=fv,
    )
    common.define_path("data", None, "Dataset path if it moved since training.", fv)
    flags.DEFINE_integer("seed", 0, "Seed for the representative subset.", flag_values=fv)
    flags.DEFINE_boolean(
        "compact",
        False,
        "Write a smaller .tflite with the same outputs: identical vectors stored once, empty "
        "buffers dropped, tensor names stripped but for inputs and outputs (for deployment).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "per_tensor_dense",
        False,
        "PTQ with one scale per FULLY_CONNECTED weight tensor instead of one per output channel "
        "(fewer bytes; int8 accuracy may drop: check it with tfkws eval).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "loop_repeats",
        False,
        "A block the model applies several times in a row (a conformer's repeat) becomes one "
        "WHILE loop, its ops stored once: fewer bytes and a smaller arena; its activations "
        "share one int8 range over the iterations (check the accuracy with tfkws eval).",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "streaming",
        False,
        "Also write the int8 streaming step model (external state: one step's new frames in, "
        "state fed back) as OUT_step.tflite with its metadata; OUT is then its window twin "
        "(same int8 params per tensor, ranges pinned per layer). The model must stream "
        "(time_padding=valid).",
        flag_values=fv,
    )
    common.define_path("firmware_dir", None, "Also run firmware-gen into this folder.", fv)
    flags.DEFINE_list(
        "target",
        None,
        "firmware-gen targets for --firmware_dir (default: tfkws.firmware.DEFAULT_TARGETS).",
        flag_values=fv,
    )


def run(fv: flags.FlagValues) -> int:
    from pathlib import Path

    from tfkws.cli import fast_mode
    from tfkws.conversion.export import export_run

    out = fv.out or str(Path(fv.run) / "model_int8.tflite")
    fv.num_calibration = fast_mode.calibration(fv.num_calibration)
    if fv.streaming:
        return _run_streaming(fv, out)
    res = export_run(
        fv.run,
        out,
        num_calibration=fv.num_calibration,
        seed=fv.seed,
        data=fv.data,
        compact=fv.compact,
        per_channel_dense=not fv.per_tensor_dense,
        loop_repeats=fv.loop_repeats,
    )
    print(f"int8 model: {res.tflite_path} ({res.tflite_bytes} bytes, ops: {', '.join(res.ops)})")
    print(f"metadata:   {res.metadata_path}")
    print(f"BN/branch folding max abs diff: {res.fold_max_abs_diff:.3g}")
    if fv.firmware_dir:
        from tfkws.firmware import DEFAULT_TARGETS, generate_firmware

        print(generate_firmware(res.tflite_path, fv.firmware_dir, fv.target or DEFAULT_TARGETS))
    return 0


def _run_streaming(fv: flags.FlagValues, out: str) -> int:
    from tfkws.errors import TfkwsError
    from tfkws.streaming.step_export import export_streaming_run

    if fv.compact or fv.per_tensor_dense or fv.firmware_dir:
        raise TfkwsError("--streaming takes none of --compact, --per_tensor_dense, --firmware_dir")
    res = export_streaming_run(
        fv.run, out, num_calibration=fv.num_calibration, seed=fv.seed, data=fv.data
    )
    s = res.step.metadata["streaming"]
    for what, r in (("window model", res.window), ("step model", res.step)):
        print(f"{what + ':':14}{r.tflite_path} ({r.tflite_bytes} bytes, ops: {', '.join(r.ops)})")
        print(f"{'metadata:':14}{r.metadata_path}")
    print(
        f"step: {s['frames_per_step']} new frame(s) per Invoke, {len(s['states'])} state "
        f"tensors ({s['state_bytes']} bytes), whole windows from step {s['warmup_steps']}"
    )
    print(f"BN/branch folding max abs diff: {res.window.fold_max_abs_diff:.3g}")
    return 0
