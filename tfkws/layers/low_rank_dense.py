"""``LowRankDense``: a Dense layer whose kernel is the product of two thin factors, W = U V.

A ``[n_in, n_out]`` kernel of rank ``r`` costs ``r * (n_in + n_out)`` weights instead of
``n_in * n_out``. The factors are applied one after the other, ``(x U) V + b``, which is also
what the int8 graph does: two FULLY_CONNECTED ops (the rank-``r`` tensor between them gets its
own int8 range), no product ``U V`` is ever materialised.

Factors are shared by reusing layer objects, never by copying weights: a ``LowRankDense`` called
in several places shares U and V; a projection that must share only U with others is written
as ``Dense(r, use_bias=False)`` (the shared U, one object) followed by its own ``Dense(n_out)``
(its V) -- the same arithmetic, see ``tfkws.layers.conformer_block``. Either way the variables
exist once, every user's gradient reaches them, and the converter stores them once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError


@keras.utils.register_keras_serializable(package="tfkws")
class LowRankDense(keras.layers.Layer):
    """``activation((x U) V + bias)`` on the last axis; U ``[n_in, rank]``, V ``[rank, units]``."""

    def __init__(
        self,
        units: int,
        rank: int,
        activation: Any = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if int(units) < 1 or int(rank) < 1:
            raise ModelError(f"{self.name}: units and rank must be >= 1, got {units}, {rank}")
        self.units = int(units)
        self.rank = int(rank)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: Any) -> None:
        shape = tf.TensorShape(input_shape)
        if shape.rank is None or shape[-1] is None:
            raise ModelError(f"{self.name}: the last input axis must be known, got {shape}")
        n_in = int(shape[-1])

        def init() -> Any:
            return self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )

        self.u_kernel = self.add_weight("u_kernel", (n_in, self.rank), initializer=init())
        self.v_kernel = self.add_weight("v_kernel", (self.rank, self.units), initializer=init())
        self.bias = (
            self.add_weight("bias", (self.units,), initializer="zeros") if self.use_bias else None
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        h = tf.tensordot(inputs, self.u_kernel, axes=[[-1], [0]])
        y = tf.tensordot(h, self.v_kernel, axes=[[-1], [0]])
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def full_kernel(self) -> np.ndarray:
        """The ``[n_in, units]`` kernel ``U V`` this layer applies (float64 product)."""
        return self.u_kernel.numpy().astype(np.float64) @ self.v_kernel.numpy().astype(np.float64)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            rank=self.rank,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def low_rank_params(n_in: int, n_out: int, rank: int, bias: bool = True) -> int:
    """Weights of a rank-``rank`` ``n_in -> n_out`` projection (``0``: a full-rank Dense)."""
    if rank <= 0:
        return n_in * n_out + (n_out if bias else 0)
    return rank * (n_in + n_out) + (n_out if bias else 0)


class FactorBank:
    """One shared U factor (``Dense(rank, use_bias=False)``) per projection kind.

    Every projection of a kind built with the same bank multiplies its input by the same U
    variable and keeps its own V (and bias); the first call fixes U's input width.
    """

    def __init__(self, rank: int, prefix: str = "shared_u") -> None:
        if int(rank) < 1:
            raise ModelError(f"a shared low-rank factor needs rank >= 1, got {rank}")
        self.rank = int(rank)
        self.prefix = prefix
        self.factors: dict[str, keras.layers.Dense] = {}

    def factor(self, kind: str) -> keras.layers.Dense:
        if kind not in self.factors:
            self.factors[kind] = keras.layers.Dense(
                self.rank, use_bias=False, name=f"{self.prefix}_{kind}"
            )
        return self.factors[kind]


def projection(
    units: int,
    name: str,
    rank: int = 0,
    bank: FactorBank | None = None,
    kind: str = "",
    activation: Any = None,
) -> Any:
    """A callable ``x -> activation(x W + b)``: ``Dense`` (``rank`` 0), ``LowRankDense``, or,
    with a ``bank``, the bank's shared U for ``kind`` followed by this projection's own V."""
    if rank <= 0:
        return keras.layers.Dense(units, activation=activation, name=name)
    if bank is None:
        return LowRankDense(units, rank, activation=activation, name=name)
    u = bank.factor(kind)
    v = keras.layers.Dense(units, activation=activation, name=f"{name}_v")
    return lambda x: v(u(x))
