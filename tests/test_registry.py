"""Model registry: names, defaults, clear errors for unknown models / params."""

import pytest

from tfkws.errors import TfkwsError
from tfkws.models.catalog import build_model, get_spec, list_models, resolve_params


def test_ds_cnn_and_aliases_are_registered():
    names = list_models()
    for name in ("ds_cnn", "ds_cnn_s", "ds_cnn_m", "ds_cnn_l"):
        assert name in names
    assert names == sorted(names)
    assert get_spec("ds_cnn").defaults["size"] == "s"
    assert "DS-CNN" in get_spec("ds_cnn").doc


def test_unknown_model_is_a_one_line_error_listing_models():
    with pytest.raises(TfkwsError) as err:
        build_model("no_such_net", (49, 40), 12)
    msg = str(err.value)
    assert "no_such_net" in msg and "ds_cnn" in msg and "\n" not in msg


def test_unknown_param_is_named():
    with pytest.raises(TfkwsError) as err:
        resolve_params("ds_cnn", {"size": "m", "widht": 3})
    assert "widht" in str(err.value) and "channels" in str(err.value)


def test_params_override_defaults():
    assert resolve_params("ds_cnn", {"size": "l"})["size"] == "l"
    assert resolve_params("ds_cnn")["size"] == "s"


def test_bad_size_value_is_a_tfkws_error():
    with pytest.raises(TfkwsError, match="size"):
        build_model("ds_cnn", (49, 40), 12, {"size": "xl"})


@pytest.mark.parametrize("batch_size", [None, 1])
def test_build_respects_batch_size(batch_size):
    model = build_model("ds_cnn", (49, 40), 3, {"channels": 4, "num_blocks": 1}, batch_size)
    assert tuple(model.inputs[0].shape) == (batch_size, 49, 40)
    assert tuple(model.outputs[0].shape) == (batch_size, 3)
