"""RepConvBlock: the folded single conv equals the multi-branch block in inference mode."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from hypothesis import given, settings
from hypothesis import strategies as st
from random_weights import randomize

from tfkws.errors import ModelError, TfkwsError
from tfkws.layers.rep_conv_block import RepConvBlock
from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D


def check_fold(block: RepConvBlock, input_shape: tuple[int, ...], seed: int = 0) -> RepConvBlock:
    x = np.random.default_rng(seed + 1).normal(size=(2, *input_shape)).astype(np.float32)
    block(x)  # build
    randomize(block, seed)
    want = block(x, training=False).numpy()
    folded = block.fold_layer()
    got = folded(x).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    return folded


VARIANTS = [
    # kernels along time on a (time, 1, feats) layout, identity + 1x1 (the RepCNN layer)
    (dict(filters=8, kernel_sizes=[(7, 1), (5, 1), (3, 1)]), (49, 1, 8)),
    # 2-D square kernels, stride 2 (no identity possible)
    (dict(filters=6, kernel_sizes=[3, 5], strides=2), (15, 10, 4)),
    # stride 2 on odd and even sizes, mixed odd/even kernels
    (dict(filters=5, kernel_sizes=[(2, 2), (4, 4), 3], strides=(2, 2)), (16, 9, 3)),
    (dict(filters=5, kernel_sizes=[(5, 1), (3, 1)], strides=(3, 1)), (17, 4, 3)),
    # dilation, identity on
    (dict(filters=8, kernel_sizes=[3, 5], dilation_rate=(2, 1)), (15, 10, 8)),
    (dict(filters=8, kernel_sizes=[(3, 3)], dilation_rate=(1, 3), use_1x1=False), (9, 12, 8)),
    # depthwise, with identity
    (dict(depthwise=True, kernel_sizes=[3, 5]), (15, 10, 8)),
    # depthwise, multiplier 2 (no identity), strided
    (
        dict(depthwise=True, depth_multiplier=2, kernel_sizes=[3, (5, 1)], strides=(2, 1)),
        (15, 11, 3),
    ),
    # depthwise dilated along time
    (dict(depthwise=True, kernel_sizes=[(7, 1), (3, 1)], dilation_rate=(2, 1)), (20, 1, 6)),
    # single branch, no 1x1, no identity: fold is just BN folding
    (dict(filters=4, kernel_sizes=[3], use_1x1=False, use_identity=False), (8, 8, 4)),
]


@pytest.mark.parametrize("kwargs,input_shape", VARIANTS)
def test_folded_block_equals_multi_branch_block(kwargs: dict, input_shape: tuple) -> None:
    block = RepConvBlock(**kwargs)
    folded = check_fold(block, input_shape)
    want_type = StridedDepthwiseConv2D if block.depthwise else keras.layers.Conv2D
    assert type(folded) is want_type
    assert folded.use_bias and folded.padding == "same"
    assert tuple(folded.kernel_size) == block.folded_kernel_size
    assert tuple(folded.strides) == block.strides
    assert tuple(folded.dilation_rate) == block.dilation_rate


@settings(max_examples=15, deadline=None)
@given(
    kernels=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    stride=st.integers(1, 3),
    rows=st.integers(4, 13),
    cols=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_fold_is_exact_for_any_alignable_kernel_and_stride(
    kernels: list[int], stride: int, rows: int, cols: int, seed: int
) -> None:
    block = RepConvBlock(3, kernel_sizes=[(k, 1) for k in kernels], strides=(stride, 1))
    check_fold(block, (rows, cols, 3), seed)


def test_identity_branch_where_shapes_allow() -> None:
    same = RepConvBlock(4, kernel_sizes=[3])
    same.build((None, 8, 8, 4))
    assert same.identity_bn is not None
    strided = RepConvBlock(4, kernel_sizes=[3], strides=2)
    strided.build((None, 8, 8, 4))
    assert strided.identity_bn is None
    wider = RepConvBlock(6, kernel_sizes=[3])
    wider.build((None, 8, 8, 4))
    assert wider.identity_bn is None
    with pytest.raises(ModelError, match="identity"):
        RepConvBlock(6, kernel_sizes=[3], use_identity=True).build((None, 8, 8, 4))


def test_branches_counted_and_all_trained() -> None:
    block = RepConvBlock(4, kernel_sizes=[(5, 1), (3, 1)])  # + 1x1 + identity
    x = tf.random.stateless_normal((3, 10, 2, 4), seed=(1, 2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x, training=True) ** 2)
    grads = tape.gradient(loss, block.trainable_weights)
    # 3 conv kernels + 4 BN (gamma, beta)
    assert len(block.trainable_weights) == 3 + 4 * 2
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_training_mode_uses_batch_statistics() -> None:
    block = RepConvBlock(4, kernel_sizes=[3])
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 6, 6, 4)).astype(np.float32)
    block(x)
    randomize(block, 3)
    before = [w.numpy().copy() for w in block.non_trainable_weights]
    train_out = block(x, training=True).numpy()
    infer_out = block(x, training=False).numpy()
    assert not np.allclose(train_out, infer_out)
    after = [w.numpy() for w in block.non_trainable_weights]
    # moving statistics updated
    assert all(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_config_round_trip_gives_same_block() -> None:
    block = RepConvBlock(
        5, kernel_sizes=[(5, 1), 3], strides=(2, 1), use_1x1=False, name="rep", momentum=0.9
    )
    x = np.random.default_rng(0).normal(size=(1, 9, 4, 3)).astype(np.float32)
    block(x)
    randomize(block, 1)
    clone = RepConvBlock.from_config(block.get_config())
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(clone(x, training=False), block(x, training=False))
    restored = keras.layers.deserialize(keras.layers.serialize(block))
    assert isinstance(restored, RepConvBlock) and restored.get_config() == block.get_config()


def test_block_inside_a_saved_model_reloads(tmp_path) -> None:
    inputs = keras.Input((12, 1, 3))
    model = keras.Model(inputs, RepConvBlock(4, kernel_sizes=[(5, 1), (3, 1)])(inputs))
    randomize(model.layers[1], 2)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.ones((1, 12, 1, 3), np.float32)
    np.testing.assert_allclose(loaded(x), model(x), rtol=0, atol=1e-6)


def test_unalignable_kernels_are_a_clear_error() -> None:
    # Dilation 2: a 2-tap kernel would sit half a tap off the 3-tap kernel's grid.
    block = RepConvBlock(2, kernel_sizes=[2, 3], dilation_rate=2)
    with pytest.raises(ModelError, match="aligned"):
        block.build((None, 9, 9, 2))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(filters=None),
        dict(filters=4, kernel_sizes=[]),
        dict(filters=4, kernel_sizes=[0]),
        dict(filters=4, strides=2, dilation_rate=2),
    ],
)
def test_bad_arguments_raise_tfkws_error(kwargs: dict) -> None:
    with pytest.raises(TfkwsError):
        RepConvBlock(**kwargs)


def test_fold_before_build_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="build"):
        RepConvBlock(2).fold_layer()


@pytest.mark.parametrize("kwargs,input_shape", VARIANTS)
def test_valid_block_folds_into_one_valid_conv(kwargs: dict, input_shape: tuple) -> None:
    """``padding='valid'`` (streamable models): the fold is exact too, to a valid conv."""
    block = RepConvBlock(padding="valid", **kwargs)
    folded = check_fold(block, input_shape)
    assert folded.padding == "valid"
    assert RepConvBlock.from_config(block.get_config()).padding == "valid"


@pytest.mark.parametrize(
    "kwargs, half",
    [
        (dict(filters=8, kernel_sizes=[(7, 1), (5, 1), (3, 1)]), 3),
        (dict(depthwise=True, kernel_sizes=[(7, 1), (3, 1)], dilation_rate=(2, 1)), 6),
    ],
)
def test_valid_block_is_the_same_block_away_from_the_edges(kwargs: dict, half: int) -> None:
    """With odd kernels, the valid block's rows are the 'same' block's rows that see no
    padding (``half`` rows in from each edge): the same function, without the edges."""
    x = np.random.default_rng(0).normal(size=(2, 30, 1, 8)).astype(np.float32)
    same, valid = RepConvBlock(**kwargs), RepConvBlock(padding="valid", **kwargs)
    same(x), valid(x)
    randomize(same, 0)
    valid.set_weights(same.get_weights())
    want, got = same(x, training=False).numpy(), valid(x, training=False).numpy()
    assert got.shape[1] == want.shape[1] - 2 * half
    np.testing.assert_allclose(got, want[:, half : half + got.shape[1]], rtol=1e-5, atol=1e-5)
