"""The tfkws CLI end to end on tiny data, and its one-line errors (exit 2) on bad input."""

import json
from pathlib import Path

import pytest
from conftest import run_cli


def test_usage_and_unknown_command(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys)
    assert code == 2 and "usage: tfkws COMMAND" in out
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2 and "unknown command 'frobnicate'" in err
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0 and "--epochs" in out


def test_models_lists_registry(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0 and "ds_cnn" in json.loads(out)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (("train", "--data=/nonexistent/ds", "--out=/tmp/x_never"), "/nonexistent/ds"),
        (("train", "--data=.", "--out=/tmp/x_never", "--model=nope"), "unknown model 'nope'"),
        (("train", "--data=.", "--out=/tmp/x_never", "--params=bogus=1"), "bogus"),
        (
            ("train", "--data=.", "--out=/tmp/x_never", "--frontend_params=pcan=false"),
            "--frontend_params: unknown feature config keys: pcan",
        ),
        (("export", "--run=/nonexistent/run"), "not a tfkws run folder"),
        (("eval", "--model=/nonexistent/m.tflite", "--data=."), "/nonexistent/m.tflite"),
        (("train", "--out=/tmp/x_never"), "--data"),
        # a firmware_gen error (its own type) reported by tfkws like its own errors
        (("slim", "select", "--target=no_such_board"), "unknown target 'no_such_board'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture, argv: tuple, needle: str
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("tfkws")]
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_corrupt_and_float_models_rejected(
    capsys: pytest.CaptureFixture, tmp_path: Path, tone_dataset: Path
) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all" * 10)
    code, _, err = run_cli(capsys, "eval", f"--model={junk}", f"--data={tone_dataset}")
    assert code == 2 and str(junk) in err and "Traceback" not in err

    import tensorflow as tf
    import tf_keras as keras

    m = keras.Sequential(
        [keras.Input((49, 40), batch_size=1), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    floaty = tmp_path / "float.tflite"
    floaty.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    code, _, err = run_cli(capsys, "eval", f"--model={floaty}", f"--data={tone_dataset}")
    assert code == 2 and "int8" in err
