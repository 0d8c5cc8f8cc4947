"""Quantization-aware training: every model family -> pure int8 TFLite that TFLM runs as trained.

Tiny models trained in memory on ~100 tone clips; the fake-quant Keras model, TFLM and LiteRT must
agree. Plus the one-line errors and the ``tfkws train --qat`` / ``tfkws qat`` -> export CLI path.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from conftest import quantized_weight_names, run_cli
from helpers import TONE_WORDS, fit, tone_features

from tfkws.conversion.model_info import inspect_tflite
from tfkws.conversion.tflite_convert import qat_to_int8_tflite
from tfkws.errors import ModelError, TfkwsError
from tfkws.folding.fold import fold_model
from tfkws.layers.sub_spectral_norm import SubSpectralNorm
from tfkws.models import bc_resnet
from tfkws.models.catalog import build_model
from tfkws.quantization import qat
from tfkws.quantization.quantize_configs import SpectralAffine
from tfkws.runs.config import TrainConfig
from tfkws.verification.parity import verify

FAMILIES = {
    "ds_cnn": {"channels": 8, "num_blocks": 1},
    "bc_resnet": {"width": 0.5, "dropout": 0.0},
    "repcnn": {"channels": [8, 8], "strides": [1, 2], "kernel_sizes": [5, 3]},
    # separable: StridedDepthwiseConv2D with unequal strides (conv + STRIDED_SLICE) in QAT too.
    "repcnn_unibranch": {
        "channels": [8, 8],
        "strides": [1, 2],
        "kernel_size": 5,
        "separable": True,
    },
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """Float features and labels of 102 tone clips (34 a word)."""
    return tone_features(tmp_path_factory.mktemp("qat_tones"), TONE_WORDS)


def _quantized_weights_missing(model: keras.Model) -> list[str]:
    """Wrapped layers whose kernel trains without fake-quant (tfmot's Conv->ReLU default)."""
    missing = []
    for layer in model.layers:
        if not isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2):
            continue
        inner = layer.layer
        quantized = quantized_weight_names(layer)
        for attr in ("kernel", "depthwise_kernel", "scale"):
            if hasattr(inner, attr) and attr not in quantized:
                missing.append(f"{inner.name}.{attr}")
    return missing


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_qat_family_is_pure_int8_and_tflm_matches(family: str, clips: tuple, monkeypatch) -> None:  # noqa: ANN001
    from ai_edge_litert.interpreter import Interpreter

    # BC-ResNet: both block kinds and both strided stages in 5 blocks, not 12 (training and
    # conversion time grow with depth; test_bc_resnet converts the full-depth graph).
    monkeypatch.setattr(bc_resnet, "_BLOCKS", (2, 1, 1, 1))
    x, y = clips
    keras.utils.set_random_seed(0)
    model = build_model(family, x.shape[1:], 3, FAMILIES[family])
    fit(model, x, y, epochs=2 if family == "bc_resnet" else 4, lr=0.01, shuffle=False)
    q = qat.qat_model(model, calibration=x)
    assert _quantized_weights_missing(q) == []
    fit(q, x, y, epochs=1, lr=0.001, shuffle=False)
    data = qat_to_int8_tflite(q)

    info = inspect_tflite(data)
    assert (info.input_dtype, info.output_dtype) == ("int8", "int8")
    assert info.input_shape[0] == 1 and not info.float_ops and not info.custom_ops
    interp = Interpreter(model_content=data)
    dtypes = {d["name"]: d["dtype"].__name__ for d in interp.get_tensor_details()}
    assert set(dtypes.values()) <= {"int8", "int32"}, dtypes

    rep = verify(data, x, keras_model=q)
    assert rep.n_clips == len(x) >= 100
    assert rep.max_abs_lsb_diff <= 1, rep
    assert rep.top1_agreement_vs_float >= 0.99, rep  # fake-quant Keras model vs TFLM int8


def test_sub_spectral_norm_survives_folding_and_becomes_affine(clips: tuple) -> None:
    """fold_model keeps SSN (it cannot fold into a conv); QAT swaps it for an exact affine."""
    x, y = clips
    keras.utils.set_random_seed(1)
    model = build_model("bc_resnet", x.shape[1:], 3, FAMILIES["bc_resnet"])
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial SSN statistics, as after training
        if isinstance(layer, SubSpectralNorm):
            shape = layer.gamma.shape
            layer.set_weights(
                [rng.uniform(0.5, 2, shape), rng.normal(size=shape), rng.normal(size=shape)]
                + [rng.uniform(0.5, 2, shape)]
            )
    folded = fold_model(model)
    assert any(isinstance(layer, SubSpectralNorm) for layer in folded.layers)
    affine = qat._ssn_to_affine(folded)
    assert not any(isinstance(layer, SubSpectralNorm) for layer in affine.layers)
    assert sum(isinstance(layer, SpectralAffine) for layer in affine.layers) == 12
    ref = model(x[:8], training=False).numpy()
    np.testing.assert_allclose(affine(x[:8], training=False).numpy(), ref, atol=1e-4)


class Sine(keras.layers.Layer):
    def call(self, inputs):  # noqa: ANN001, ANN201
        return keras.backend.sin(inputs)


def _custom_model() -> keras.Model:
    inp = keras.Input((49, 40))
    h = keras.layers.Dense(8)(inp)
    h = Sine(name="wobble")(h)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(h)))


def _bn_after_relu_model() -> keras.Model:
    inp = keras.Input((49, 40))
    h = keras.layers.ReLU()(keras.layers.Dense(8)(inp))
    h = keras.layers.BatchNormalization(name="late_bn")(h)
    return keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(h)))


@pytest.mark.parametrize(
    "make, needle",
    [(_custom_model, "'wobble' (Sine)"), (_bn_after_relu_model, "'late_bn' (BatchNormalization)")],
)
def test_unquantizable_layer_is_one_line_model_error(make, needle: str) -> None:  # noqa: ANN001
    with pytest.raises(ModelError) as err:
        qat.qat_model(make())
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and "cannot be quantization-aware trained" in msg


def test_qat_config_validation() -> None:
    with pytest.raises(TfkwsError, match="qat_epochs must be < epochs"):
        TrainConfig(epochs=2, qat=True, qat_epochs=2)
    with pytest.raises(TfkwsError, match="between 1 and epochs"):
        TrainConfig(epochs=2, qat=True, qat_epochs=0)
    with pytest.raises(TfkwsError, match="need qat=True"):
        TrainConfig(epochs=2, qat_epochs=1)
    assert TrainConfig(epochs=5, qat=True, qat_epochs=2).float_epochs == 3


@pytest.mark.parametrize(
    "argv, needle",
    [
        (("qat", "--run=/nonexistent/run", "--out=/tmp/x_never"), "not a tfkws run folder"),
        (("train", "--data=.", "--out=/tmp/x_never", "--qat", "--epochs=1"), "qat_epochs must"),
        (("train", "--data=.", "--out=/tmp/x_never", "--qat_epochs=1"), "need --qat"),
    ],
)
def test_qat_cli_bad_input_one_line(
    capsys: pytest.CaptureFixture, argv: tuple, needle: str
) -> None:
    code, _, err = run_cli(capsys, *argv)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("tfkws")]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def _export_and_check(capsys: pytest.CaptureFixture, run: Path) -> dict:
    code, out, err = run_cli(capsys, "export", f"--run={run}")
    assert code == 0, err
    meta = json.loads((run / "model_int8.metadata.json").read_text())
    data = (run / "model_int8.tflite").read_bytes()
    info = inspect_tflite(data)
    results = json.loads((run / "results.json").read_text())
    train = json.loads((run / "run_config.json").read_text())["train"]
    if results.get("qat_kept_start") and train.get("qat_source"):
        # The kept start is the float run's PTQ model: exported as that.
        assert meta["quantization"] == "ptq" and meta["qat"]["kept_start"], meta
    else:
        assert meta["quantization"] == "qat" and meta["num_calibration"] == 0
    assert meta["input"]["dtype"] == meta["output"]["dtype"] == "int8"
    assert list(info.input_shape) == meta["input"]["shape"] and info.input_shape[0] == 1
    assert not info.float_ops and "CONV_2D" in meta["ops"]
    return meta


def test_cli_train_then_qat_then_export(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    common = ["--mode=all", "--model=ds_cnn", "--params=channels=8,num_blocks=1", "--verbose=0"]
    common += ["--batch_size=8", "--noaugment", f"--data={tone_dataset}"]
    float_run, qat_run = tmp_path / "float", tmp_path / "qat"
    code, _, err = run_cli(capsys, "train", *common, "--epochs=2", f"--out={float_run}")
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "qat", f"--run={float_run}", f"--out={qat_run}", "--epochs=1", "--verbose=0"
    )
    assert code == 0, err
    cfg = json.loads((qat_run / "run_config.json").read_text())["train"]
    assert cfg["qat"] and cfg["qat_epochs"] == 1 and cfg["qat_source"] == str(float_run.resolve())
    assert (qat_run / "float_best_weights.h5").exists()
    assert list((qat_run / "checkpoints_qat").glob("ckpt-1.index"))
    meta = _export_and_check(capsys, qat_run)
    kept = meta["quantization"] == "ptq"  # no QAT epoch beat the start (the PTQ model)
    assert meta["source_run"] == str((float_run if kept else qat_run).resolve())
    # Resuming a finished QAT run restores the checkpoint and trains nothing more.
    code, _, err = run_cli(
        capsys, "qat", f"--run={float_run}", f"--out={qat_run}", "--epochs=1", "--resume"
    )
    assert code == 0, err
    code, _, err = run_cli(capsys, "qat", f"--run={qat_run}", f"--out={tmp_path / 'again'}")
    assert code == 2 and "already a QAT run" in err


def test_cli_train_with_qat_phase(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "train",
        "--mode=all",
        "--model=ds_cnn",
        "--params=channels=8,num_blocks=1",
        "--verbose=0",
        "--batch_size=8",
        "--noaugment",
        f"--data={tone_dataset}",
        "--epochs=2",
        "--qat",
        "--qat_epochs=1",
        f"--out={run}",
    )
    assert code == 0, err
    hist = json.loads((run / "history.json").read_text())
    assert len(hist["loss"]) == 2 and len(hist["lr"]) == 2
    assert list((run / "checkpoints").glob("ckpt-1.index"))  # float epoch 1
    assert list((run / "checkpoints_qat").glob("ckpt-2.index"))  # QAT epoch 2
    assert json.loads((run / "results.json").read_text())["qat"] is True
    _export_and_check(capsys, run)
