"""The whole streaming pipeline on the device: micro frontend + sliding-window model + detector.

``firmware-gen --stream-audio`` builds the generated ``NAME_stream_main.cc`` for Cortex-M4 and
runs it on a recording in QEMU; its detections must equal ``tfkws detect``'s exactly (label,
time, score). ``tfkws detect --frontend tflm`` computes features with the device's frontend code
(TFLM's C library, host build): TensorFlow's ``audio_microfrontend`` op, which training uses,
bundles other frontend/kissfft versions whose output differs in a few values per thousand
(tests/test_firmware_gen_on_target_frontend.py), enough to move a score by an LSB.

A random-weight conv model (no training) on 2.5 s of noise, a chirp and a tone, detector
thresholds low enough to fire several times. Needs the arm toolchain, QEMU and a TFLM tree with
kissfft's implementation files; TFLM is built once per cache (only the model's kernels).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from firmware_gen.toolchain import available, default_tflm_root

TFLM = default_tflm_root()
REASON = available() or (None if TFLM is not None else "no TFLM source tree (set TFLM_ROOT)")
needs_target = pytest.mark.skipif(REASON is not None, reason=REASON or "")
SR = 16000
LABELS = ["_silence_", "yes", "no"]


def _tiny_kws(path: Path) -> Path:
    """A random-weight int8 conv model on [49, 40] micro frontend features, with tfkws metadata."""
    import tensorflow as tf
    import tf_keras as keras

    from firmware_gen.model import parse_model
    from firmware_gen.ops import resolver_ops
    from tfkws.features.config import FeatureConfig

    keras.utils.set_random_seed(0)
    i = keras.Input((49, 40, 1), batch_size=1)
    x = keras.layers.Conv2D(8, (10, 8), strides=(4, 4), activation="relu")(i)
    x = keras.layers.Dense(len(LABELS))(keras.layers.Flatten()(x))

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(16):  # micro frontend features are about 0..26
            yield [rng.uniform(0, 26, (1, 49, 40, 1)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(i, x))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    data = bytes(conv.convert())
    info = parse_model(data)

    def io(t) -> dict:
        return {
            "shape": list(t.shape),
            "dtype": "int8",
            "scale": t.scale[0],
            "zero_point": t.zero_point[0],
        }

    meta = {
        "format": "tfkws-model-metadata",
        "version": 1,
        "labels": LABELS,
        "feature_config": FeatureConfig().to_dict(),
        "input": io(info.input_tensors[0]),
        "output": io(info.output_tensors[0]),
        "ops": [o["op"] for o in resolver_ops(info)],
        "tflite_sha256": hashlib.sha256(data).hexdigest(),
    }
    path.write_bytes(data)
    path.with_name(path.stem + ".metadata.json").write_text(json.dumps(meta))
    return path


def _write_audio(path: Path) -> None:
    import soundfile as sf

    rng = np.random.default_rng(3)
    audio = (0.01 * rng.standard_normal(int(2.5 * SR))).astype(np.float32)
    t = np.arange(SR // 2) / SR
    window = np.hanning(SR // 2)
    audio[int(0.9 * SR) : int(1.4 * SR)] += 0.4 * window * np.sin(2 * np.pi * (300 + 3000 * t) * t)
    audio[int(1.7 * SR) : int(2.2 * SR)] += 0.3 * window * np.sin(2 * np.pi * 1800 * t)
    sf.write(path, audio, SR, subtype="PCM_16")


@pytest.fixture(scope="module")
def kws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    _write_audio(root / "stream.wav")
    return _tiny_kws(root / "kws.tflite")


def _detect(model: Path, frontend: str) -> dict:
    from tfkws.streaming.detect_audio import StreamSettings, detect_audio

    settings = StreamSettings(
        threshold=0.4, smoothing_ms=40, refractory_ms=100, frontend=frontend, tflm_root=TFLM
    )
    return detect_audio(model, model.with_name("stream.wav"), settings)


def _compile_for_m4(src: Path, cwd: Path) -> None:
    """``src`` compiles for Cortex-M4 with TFLM's flags and -Wall -Werror."""
    import subprocess

    from firmware_gen.cpus import CPUS
    from firmware_gen.tflm_lib import compile_flags
    from firmware_gen.toolchain import find_toolchain

    _, cxx = compile_flags(TFLM, CPUS["m4"], "reference")
    res = subprocess.run(
        [find_toolchain().gxx, *cxx, "-Wall", "-Werror", f"-I{src.parent}", "-c", str(src)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]


def _run_stream_cli(model: Path, audio: Path, tmp_path: Path, capsys) -> None:
    """``firmware-gen MODEL --detector --on-target m4 --stream-audio --stream-reference`` as a
    user runs it (``detector.json`` and ``detect.json`` in ``tmp_path``), writing ``fw/``; it
    must report detections identical to tfkws detect."""
    from firmware_gen.cli import main

    argv = [
        "firmware-gen",
        str(model),
        "--out",
        str(tmp_path / "fw"),
        "--detector",
        str(tmp_path / "detector.json"),
        "--on-target",
        "m4",
        "--kernels",
        "reference",
        "--tflm-library",
        "model",
        "--tflm-root",
        str(TFLM),
        "--stream-audio",
        str(audio),
        "--stream-reference",
        str(tmp_path / "detect.json"),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "identical to tfkws detect" in capsys.readouterr().out


@pytest.mark.parametrize(("scale", "zero_point"), [(0.10196, -128), (0.0371, -5), (3.7, 100)])
def test_feature_table_is_tfkws_quantization(scale: float, zero_point: int) -> None:
    """kQuantEdges reproduce tfkws's int8 features for every raw frontend value."""
    from firmware_gen.stream import quant_edges, quantize_raw
    from tfkws.features.config import FeatureConfig
    from tfkws.features.extract import features_to_int8

    out_scale = FeatureConfig().output_scale
    raw = np.arange(65536)
    want = features_to_int8(raw.astype(np.float32) * np.float32(out_scale), scale, zero_point)
    edges = quant_edges(out_scale, scale, zero_point)
    assert len(edges) == 255 and list(edges) == sorted(edges)
    np.testing.assert_array_equal(quantize_raw(edges, raw), want)


@needs_target
def test_stream_main_with_its_main_compiles_for_cortex_m4(kws: Path, tmp_path: Path) -> None:
    """The example firmware as a user builds it (its own main, a board_read_audio to provide)."""

    from firmware_gen.pipeline import generate

    rep = _detect(kws, "tf")
    result = generate(kws, tmp_path / "fw", detector=rep["detector"])
    src = tmp_path / "fw" / "kws_stream_main.cc"
    assert "kws_stream_main.cc" in result.files and src.exists()
    _compile_for_m4(src, tmp_path)
    again = generate(kws, tmp_path / "fw2", detector=rep["detector"])
    assert again.files == result.files
    assert (tmp_path / "fw2" / src.name).read_text() == src.read_text()  # deterministic


@needs_target
def test_device_pipeline_detections_equal_tfkws_detect(kws: Path, tmp_path: Path, capsys) -> None:
    """``firmware-gen --stream-audio`` as a user runs it, against ``tfkws detect``'s report."""
    from firmware_gen import atomic

    ref = _detect(kws, "tflm")
    assert len(ref["detections"]) >= 2, "the case should fire to compare"
    atomic.write_json(tmp_path / "detect.json", ref)
    atomic.write_json(tmp_path / "detector.json", ref["detector"])
    _run_stream_cli(kws, kws.with_name("stream.wav"), tmp_path, capsys)
    report = json.loads((tmp_path / "fw" / "kws_report.json").read_text())
    v = report["stream"]["variants"][0]
    assert v["cpu"] == "cortex-m4" and v["kernels"] == "reference"
    # the same int8 frames, the same Invokes, the same detections (label, time, score)
    assert v["frames"] == ref["frames"] and v["invokes"] == ref["invokes"]
    assert v["features_sha256"] == ref["features_sha256"]
    assert v["detections"] == ref["detections"]
    assert v["reference"]["identical"] and v["reference"]["features_identical"]
    ins = v["instructions"]
    assert ins["invoke_steps"]["count"] == ref["invokes"]
    assert 0 < ins["frame_only_steps"]["max"] < ins["invoke_steps"]["min"]
    ram = v["ram_bytes"]
    assert ram["arena_used"] <= ram["arena"] and ram["frontend_state_heap"] > 0
    assert "## Streaming pipeline on target" in (tmp_path / "fw" / "kws_report.md").read_text()


def _tiny_step_kws(path: Path) -> Path:
    """A random-weight DS-CNN (``time_padding="valid"``) on [49, 40] micro frontend features as
    ``tfkws export --streaming`` writes it: ``path`` the int8 step model, with its metadata."""
    import tf_keras as keras
    from random_weights import randomize

    from tfkws.conversion.model_info import inspect_tflite
    from tfkws.features.config import FeatureConfig
    from tfkws.folding.fold import fold_model
    from tfkws.models.ds_cnn import build_ds_cnn
    from tfkws.streaming.step_export import streaming_metadata
    from tfkws.streaming.streaming_int8 import step_layout, streaming_int8

    keras.utils.set_random_seed(0)
    model = build_ds_cnn(
        (49, 40), len(LABELS), batch_size=1, channels=8, num_blocks=2, time_padding="valid"
    )
    folded = fold_model(randomize(model, 0, "network"))
    rep = np.random.default_rng(0).uniform(0, 26, (16, 49, 40)).astype(np.float32)
    res = streaming_int8(folded, rep)
    layout = step_layout(res.step_tflite, res.streaming)
    info = inspect_tflite(res.step_tflite)
    meta = {
        "format": "tfkws-model-metadata",
        "version": 1,
        "labels": LABELS,
        "feature_config": FeatureConfig().to_dict(),
        "input": info.inputs[layout.frames_input].as_dict(),
        "output": info.outputs[layout.logits_output].as_dict(),
        "ops": list(info.ops),
        "tflite_sha256": hashlib.sha256(res.step_tflite).hexdigest(),
        "streaming": streaming_metadata(res.streaming, layout, res.step_tflite, "window.tflite"),
    }
    path.write_bytes(res.step_tflite)
    path.with_name(path.stem + ".metadata.json").write_text(json.dumps(meta))
    return path


@needs_target
def test_device_step_model_detections_equal_tfkws_detect(tmp_path: Path, capsys) -> None:
    """The streaming step model on the device: its new frames and fed-back int8 state every
    step, the detector from its first whole window; detections and features equal ``tfkws
    detect --frontend tflm`` with the same step model. The generated file also compiles with
    -Wall -Werror and is generated byte-identically twice."""

    from firmware_gen import atomic
    from firmware_gen.pipeline import generate

    _write_audio(tmp_path / "stream.wav")
    step = _tiny_step_kws(tmp_path / "kws_step.tflite")
    ref = _detect(step, "tflm")
    assert ref["form"] == "step" and len(ref["detections"]) >= 2, ref["detections"]
    assert ref["invokes"] == ref["frames"] // ref["hop_frames"]
    atomic.write_json(tmp_path / "detect.json", ref)
    atomic.write_json(tmp_path / "detector.json", ref["detector"])

    first = generate(step, tmp_path / "fw0", detector=ref["detector"])
    src = tmp_path / "fw0" / "kws_step_stream_main.cc"
    assert "kws_step_stream_main.cc" in first.files and "kStreamWarmupSteps" in src.read_text()
    again = generate(step, tmp_path / "fw1", detector=ref["detector"])
    assert (tmp_path / "fw1" / src.name).read_text() == src.read_text()  # deterministic
    _compile_for_m4(src, tmp_path)
    assert again.files == first.files

    _run_stream_cli(step, tmp_path / "stream.wav", tmp_path, capsys)
    report = json.loads((tmp_path / "fw" / "kws_step_report.json").read_text())
    assert report["stream"]["form"] == "step"
    v = report["stream"]["variants"][0]
    assert v["frames"] == ref["frames"] and v["invokes"] == ref["invokes"]
    assert v["features_sha256"] == ref["features_sha256"]
    assert v["detections"] == ref["detections"]
    assert v["reference"]["identical"] and v["reference"]["features_identical"]
    ins = v["instructions"]
    assert ins["invoke_steps"]["count"] == ref["invokes"]
    ram = v["ram_bytes"]
    state = json.loads(step.with_name("kws_step.metadata.json").read_text())["streaming"]
    assert ram["model_state"] == state["state_bytes"] > 0
    assert ram["arena_used"] <= ram["arena"] and ram["stream_state"] > ram["model_state"]
    # the on-target measurement ran the step model (all its inputs) too
    assert report["on_target"]["variants"][0]["cpu"] == "cortex-m4"


def test_stream_audio_needs_detector_and_target(tmp_path: Path, capsys) -> None:
    from firmware_gen_models import tiny_model

    from firmware_gen.cli import main

    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model("conv"))
    (tmp_path / "a.wav").write_bytes(b"")
    code = main(
        [
            "firmware-gen",
            str(model),
            "--out",
            str(tmp_path / "fw"),
            "--stream-audio",
            str(tmp_path / "a.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--stream-audio needs --detector and --on-target" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "fw").exists()
