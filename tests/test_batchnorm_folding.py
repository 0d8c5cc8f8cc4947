"""BN / branch folding: a new inference model that computes the same function."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from random_weights import randomize

from tfkws.errors import ModelError
from tfkws.folding.batchnorm import fold_bn_weights
from tfkws.folding.fold import count_layers, fold_model, with_batch_size
from tfkws.models.catalog import build_model


def assert_equivalent(original, folded, shape, seed=0, n=4):
    x = np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype(np.float32)
    ref = original(x, training=False).numpy()
    got = folded(x, training=False).numpy()
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(ref - got).max() <= 1e-5 * scale
    assert np.abs(ref).max() > 1e-3  # the check is not vacuous


class TwoBranchConv(keras.layers.Layer):
    """Toy re-parameterisable block: conv3x3(x) + conv1x1(x), folds into one 3x3 conv."""

    def __init__(self, filters: int, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape):
        self.k3 = keras.layers.Conv2D(self.filters, 3, padding="same", name="k3")
        self.k1 = keras.layers.Conv2D(self.filters, 1, padding="same", name="k1")
        self.k3.build(input_shape)
        self.k1.build(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        return self.k3(inputs) + self.k1(inputs)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}

    def fold_layer(self):
        k3, b3 = self.k3.get_weights()
        k1, b1 = self.k1.get_weights()
        kernel = k3.copy()
        kernel[1:2, 1:2] += k1
        conv = keras.layers.Conv2D(self.filters, 3, padding="same", name=f"{self.name}_folded")
        conv.build((None, None, None, kernel.shape[2]))
        conv.set_weights([kernel, b3 + b1])
        return conv


def test_ds_cnn_folds_every_bn_and_drops_dropout():
    model = randomize(build_model("ds_cnn", (49, 40), 5, {"channels": 8, "num_blocks": 2}))
    folded = fold_model(model)
    assert count_layers(model, keras.layers.BatchNormalization) == 5
    assert count_layers(folded, keras.layers.BatchNormalization) == 0
    assert count_layers(folded, keras.layers.Dropout) == 0
    for name in ("conv0", "ds1_dw", "ds1_pw", "ds2_dw", "ds2_pw"):
        assert folded.get_layer(name).use_bias
    assert_equivalent(model, folded, (49, 40))


@pytest.mark.parametrize("batch_size", [None, 1])
def test_batch_size_is_kept(batch_size):
    model = build_model("ds_cnn", (49, 10), 3, {"channels": 4, "num_blocks": 1}, batch_size)
    folded = fold_model(randomize(model))
    assert folded.inputs[0].shape[0] == batch_size
    assert_equivalent(model, folded, (49, 10), n=1 if batch_size else 3)


def test_folded_model_shares_no_state_with_the_original():
    model = randomize(build_model("ds_cnn", (49, 10), 3, {"channels": 4, "num_blocks": 1}))
    before = [w.copy() for w in model.get_weights()]
    folded = fold_model(model)
    for layer in folded.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_residual_graph_shared_layer_and_unfoldable_bns():
    inp = keras.Input((12, 10, 4))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="a")(inp)
    a = keras.layers.BatchNormalization(name="a_bn")(a)  # foldable
    x = keras.layers.Add()([a, inp])  # residual add
    b = keras.layers.Conv2D(4, 1, name="b")(x)
    b_bn = keras.layers.BatchNormalization(name="b_bn")(b)  # b also read by the add below
    x = keras.layers.Add()([b_bn, b])
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(name="after_relu_bn")(x)  # not after a linear layer
    dw = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    dw = keras.layers.BatchNormalization(name="dw_bn")(dw)  # foldable, multiplier 2
    x = keras.layers.GlobalAveragePooling2D()(dw)
    shared = keras.layers.Dense(8, name="shared")
    y = keras.layers.BatchNormalization(name="shared_bn")(shared(x[:, :4]))  # shared: keep
    z = shared(x[:, 4:])
    out = keras.layers.Dense(3, name="head")(keras.layers.Concatenate()([y, z]))
    out = keras.layers.BatchNormalization(name="head_bn")(out)  # BN on the model output
    model = randomize(keras.Model(inp, out), seed=3)

    folded = fold_model(model)
    kept = {
        layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert kept == {"b_bn", "after_relu_bn", "shared_bn"}
    assert count_layers(folded, keras.layers.Add) == 2
    assert_equivalent(model, folded, (12, 10, 4), seed=1)


def test_custom_fold_layer_is_replaced_and_following_bn_folded():
    inp = keras.Input((16, 8, 3), batch_size=1)
    x = TwoBranchConv(5, name="block")(inp)
    x = keras.layers.BatchNormalization(name="block_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5)(x)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = randomize(keras.Model(inp, out), seed=5)

    folded = fold_model(model)
    assert not any(isinstance(layer, TwoBranchConv) for layer in folded.layers)
    assert count_layers(folded, keras.layers.BatchNormalization) == 0
    assert "block_folded" in [layer.name for layer in folded.layers]
    assert_equivalent(model, folded, (16, 8, 3), n=1)


def test_nested_model_is_folded_too():
    inner_in = keras.Input((6, 5))
    h = keras.layers.Dense(7, use_bias=False)(inner_in)
    inner = keras.Model(inner_in, keras.layers.BatchNormalization()(h), name="inner")
    inp = keras.Input((6, 5))
    model = randomize(keras.Model(inp, keras.layers.Dense(2)(inner(inp))))
    folded = fold_model(model)
    assert count_layers(folded, keras.layers.BatchNormalization) == 0
    assert_equivalent(model, folded, (6, 5))


def test_with_batch_size_one_keeps_outputs():
    model = randomize(build_model("ds_cnn", (49, 10), 3, {"channels": 4, "num_blocks": 1}))
    one = with_batch_size(model, 1)
    assert tuple(one.inputs[0].shape) == (1, 49, 10)
    assert count_layers(one, keras.layers.BatchNormalization) == 3  # only re-batched
    assert_equivalent(model, one, (49, 10), n=1)


def test_fold_bn_weights_formula_on_dense():
    dense = keras.layers.Dense(3, use_bias=False)
    dense.build((None, 2))
    bn = keras.layers.BatchNormalization(epsilon=0.0)
    bn.build((None, 3))
    dense.set_weights([np.arange(6, dtype=np.float32).reshape(2, 3)])
    bn.set_weights(
        [np.float32([1, 2, 3]), np.float32([0, 1, 0]), np.float32([1, 1, 1]), np.float32([4, 4, 1])]
    )
    kernel, bias = fold_bn_weights(dense, bn)
    np.testing.assert_allclose(kernel, np.arange(6).reshape(2, 3) * [0.5, 1.0, 3.0])
    np.testing.assert_allclose(bias, [-0.5, 0.0, -3.0])


def test_subclassed_model_is_rejected():
    class Sub(keras.Model):
        def call(self, x):
            return tf.identity(x)

    with pytest.raises(ModelError, match="functional"):
        fold_model(Sub())
