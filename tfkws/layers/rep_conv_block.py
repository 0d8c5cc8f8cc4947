"""Re-parameterisable multi-branch convolution (RepVGG / MobileOne / RepCNN style).

Training sees several parallel branches -- convolutions with different kernel sizes, a 1x1 and,
where shapes allow, an identity -- each with its own BatchNorm, summed. All branches are linear,
so after training ``fold_layer()`` writes them as ONE ordinary Keras convolution with bias: the
deployed graph costs exactly what a plain single-branch CNN costs, but it was trained with the
richer, better-conditioned parameterisation.

The block has no activation: put one after it, so the folded model has the same layer list as
a uni-branch ``Conv2D -> BatchNormalization -> ReLU`` network once its BN is folded too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.strided_depthwise_conv import StridedDepthwiseConv2D

KernelSpec = int | Sequence[int]


def _pair(value: KernelSpec, what: str) -> tuple[int, int]:
    """Keras convention: an int means the same value on both axes."""
    if isinstance(value, int | np.integer):
        pair = (int(value), int(value))
    else:
        pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ModelError(f"RepConvBlock: {what} must be a positive int or a pair, got {value!r}")
    return pair  # type: ignore[return-value]


def _same_pad_before(size: int | None, kernel: int, stride: int, dilation: int) -> int:
    """Leading zero-padding TensorFlow's ``padding='same'`` applies on one axis."""
    span = (kernel - 1) * dilation + 1
    if stride == 1:
        return (span - 1) // 2
    if size is None:
        raise ModelError(
            "RepConvBlock: a strided block needs a static input size to align its branches"
        )
    out = -(-size // stride)
    return max((out - 1) * stride + span - size, 0) // 2


@keras.utils.register_keras_serializable(package="tfkws")
class RepConvBlock(keras.layers.Layer):
    """Sum of parallel ``conv -> BatchNorm`` branches that folds into a single convolution.

    Args:
      filters: output channels (ignored when ``depthwise``; then it is in_channels * multiplier).
      kernel_sizes: one kernel per conv branch, int (square) or (rows, cols); e.g.
        ``((7, 1), (5, 1), (3, 1))`` for kernels along time on a (time, freq) layout.
      use_1x1: add a 1x1 conv branch (skipped if a 1x1 kernel is already listed).
      use_identity: add a BN-only identity branch; ``None`` means "where shapes allow" (stride 1
        and out channels == in channels), ``True`` demands it, ``False`` omits it.
      strides, dilation_rate: as in Keras (Keras forbids both > 1 at once).
      depthwise: depthwise convolutions (``DepthwiseConv2D``) instead of full ones.
      depth_multiplier: only for ``depthwise``.
      epsilon, momentum: of every branch's BatchNorm.
      padding: ``'same'`` (default) or ``'valid'``.

    With ``'same'``, smaller kernels are placed inside the largest at the offset TensorFlow's own
    'same' padding would give them, so the fold is exact for any stride. With ``'valid'`` (for
    streaming: no padding along time) each smaller kernel sits centred in the largest (offset
    ``(K - k) // 2`` taps): its branch reads the input from that offset and is cut to the
    largest kernel's output size, so the block folds into one ``valid`` conv, exactly.
    """

    def __init__(
        self,
        filters: int | None = None,
        kernel_sizes: Sequence[KernelSpec] = (3,),
        use_1x1: bool = True,
        use_identity: bool | None = None,
        strides: KernelSpec = 1,
        dilation_rate: KernelSpec = 1,
        depthwise: bool = False,
        depth_multiplier: int = 1,
        epsilon: float = 1e-3,
        momentum: float = 0.99,
        kernel_initializer: Any = "he_normal",
        kernel_regularizer: Any = None,
        padding: str = "same",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if padding not in ("same", "valid"):
            raise ModelError(f"RepConvBlock: padding must be 'same' or 'valid', got {padding!r}")
        self.padding = padding
        if not depthwise and (filters is None or int(filters) < 1):
            raise ModelError("RepConvBlock: 'filters' must be a positive int for a full conv")
        if not kernel_sizes:
            raise ModelError("RepConvBlock: 'kernel_sizes' must list at least one kernel")
        self.filters = None if filters is None else int(filters)
        self.kernel_sizes = tuple(_pair(k, "kernel size") for k in kernel_sizes)
        self.use_1x1 = bool(use_1x1)
        self.use_identity = use_identity
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ModelError("RepConvBlock: strides > 1 and dilation_rate > 1 cannot be combined")
        self.depthwise = bool(depthwise)
        self.depth_multiplier = int(depth_multiplier)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        kernels = list(dict.fromkeys(self.kernel_sizes))  # de-duplicate, keep order
        if self.use_1x1 and (1, 1) not in kernels:
            kernels.append((1, 1))
        self._branch_kernels = tuple(kernels)

    # ------------------------------------------------------------------ build / call
    def build(self, input_shape: Any) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4:
            raise ModelError(
                f"RepConvBlock expects (batch, rows, cols, channels), got {input_shape}"
            )
        in_ch = input_shape[-1]
        if in_ch is None:
            raise ModelError("RepConvBlock: the channel dimension must be known")
        self._in_channels = int(in_ch)
        self._out_channels = (
            self._in_channels * self.depth_multiplier if self.depthwise else self.filters
        )
        shapes_allow = self.strides == (1, 1) and self._out_channels == self._in_channels
        if self.use_identity and not shapes_allow:
            raise ModelError(
                f"RepConvBlock {self.name}: identity branch needs stride 1 and equal in/out "
                f"channels, got strides {self.strides}, {self._in_channels}->{self._out_channels}"
            )
        self._has_identity = shapes_allow if self.use_identity is None else bool(self.use_identity)

        self.convs: list[keras.layers.Layer] = []
        self.bns: list[keras.layers.Layer] = []
        for i, k in enumerate(self._branch_kernels):
            tag = f"{k[0]}x{k[1]}"
            # A fresh initializer per branch: an unseeded instance repeats its values.
            init = self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )
            if self.depthwise:
                conv = StridedDepthwiseConv2D(
                    k,
                    strides=self.strides,
                    padding=self.padding,
                    depth_multiplier=self.depth_multiplier,
                    dilation_rate=self.dilation_rate,
                    use_bias=False,
                    depthwise_initializer=init,
                    depthwise_regularizer=self.kernel_regularizer,
                    name=f"dw{tag}_{i}",
                )
            else:
                conv = keras.layers.Conv2D(
                    self.filters,
                    k,
                    strides=self.strides,
                    padding=self.padding,
                    dilation_rate=self.dilation_rate,
                    use_bias=False,
                    kernel_initializer=init,
                    kernel_regularizer=self.kernel_regularizer,
                    name=f"conv{tag}_{i}",
                )
            bn = keras.layers.BatchNormalization(
                epsilon=self.epsilon, momentum=self.momentum, name=f"bn{tag}_{i}"
            )
            # Built inside their own name scopes so every weight has a unique name (h5 saving).
            with tf.name_scope(conv.name):
                conv.build(input_shape)
            with tf.name_scope(bn.name):
                bn.build(conv.compute_output_shape(input_shape))
            self.convs.append(conv)
            self.bns.append(bn)
        self.identity_bn = None
        if self._has_identity:
            self.identity_bn = keras.layers.BatchNormalization(
                epsilon=self.epsilon, momentum=self.momentum, name="bn_identity"
            )
            with tf.name_scope(self.identity_bn.name):
                self.identity_bn.build(input_shape)
        self._input_hw = (input_shape[1], input_shape[2])
        self._offsets = tuple(self._branch_offsets())
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.padding == "valid":
            return self._call_valid(inputs, training)
        outputs = [
            bn(conv(inputs), training=training)
            for conv, bn in zip(self.convs, self.bns, strict=True)
        ]
        if self.identity_bn is not None:
            outputs.append(self.identity_bn(inputs, training=training))
        return tf.add_n(outputs) if len(outputs) > 1 else outputs[0]

    def _call_valid(self, inputs: tf.Tensor, training: bool | None) -> tf.Tensor:
        """Each branch reads from its kernel's offset and is cut to the folded conv's size."""
        rows, cols = self.compute_output_shape(inputs.shape)[1:3]
        (dh, dw), outputs = self.dilation_rate, []
        for conv, bn, (r, c) in zip(self.convs, self.bns, self._offsets, strict=False):
            y = bn(conv(inputs[:, r * dh :, c * dw :]), training=training)
            outputs.append(y[:, :rows, :cols])
        if self.identity_bn is not None:  # stride 1 here
            r, c = self._offsets[-1]
            x = inputs[:, r * dh : r * dh + rows, c * dw : c * dw + cols]
            outputs.append(self.identity_bn(x, training=training))
        return tf.add_n(outputs) if len(outputs) > 1 else outputs[0]

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        input_shape = tf.TensorShape(input_shape)
        rows, cols = input_shape[1], input_shape[2]
        if self.padding == "valid":
            (kh, kw), (sh, sw) = self.folded_kernel_size, self.strides
            (dh, dw) = self.dilation_rate
            out_rows = None if rows is None else (rows - (kh - 1) * dh - 1) // sh + 1
            out_cols = None if cols is None else (cols - (kw - 1) * dw - 1) // sw + 1
        else:
            out_rows = None if rows is None else -(-rows // self.strides[0])
            out_cols = None if cols is None else -(-cols // self.strides[1])
        ch = input_shape[-1] * self.depth_multiplier if self.depthwise else self.filters
        return tf.TensorShape([input_shape[0], out_rows, out_cols, ch])

    # ------------------------------------------------------------------ folding
    @property
    def folded_kernel_size(self) -> tuple[int, int]:
        """Kernel of the folded conv: the elementwise maximum of all branch kernels."""
        return (
            max(k[0] for k in self._branch_kernels),
            max(k[1] for k in self._branch_kernels),
        )

    def _branch_offsets(self) -> list[tuple[int, int]]:
        """Where each branch kernel (and the identity, as a 1x1) sits inside the folded kernel.

        'same' padding with stride s reads input ``o*s - pad_before(k) + i*d`` for tap i, so a
        small kernel is the large one shifted by ``(pad_before(K) - pad_before(k)) / d`` taps.
        """
        big = self.folded_kernel_size
        kernels = list(self._branch_kernels) + ([(1, 1)] if self._has_identity else [])
        if self.padding == "valid":
            return [((big[0] - k[0]) // 2, (big[1] - k[1]) // 2) for k in kernels]
        offsets = []
        for k in kernels:
            off = []
            for axis in range(2):
                size, s, d = self._input_hw[axis], self.strides[axis], self.dilation_rate[axis]
                shift = _same_pad_before(size, big[axis], s, d) - _same_pad_before(
                    size, k[axis], s, d
                )
                if shift % d or shift < 0 or shift // d + k[axis] > big[axis]:
                    raise ModelError(
                        f"RepConvBlock {self.name}: kernel {k} cannot be aligned inside "
                        f"{big} with dilation {self.dilation_rate}; use odd kernel sizes"
                    )
                off.append(shift // d)
            offsets.append((off[0], off[1]))
        return offsets

    @staticmethod
    def _bn_scale_shift(bn: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray]:
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
        scale = gamma / np.sqrt(var + bn.epsilon)
        return scale, beta - mean * scale

    def folded_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, bias) of the single equivalent conv, computed in float64 for exactness."""
        if not self.built:
            raise ModelError(f"RepConvBlock {self.name}: build the layer before folding it")
        kh, kw = self.folded_kernel_size
        cin, cout = self._in_channels, self._out_channels
        last = self.depth_multiplier if self.depthwise else cout
        kernel = np.zeros((kh, kw, cin, last), np.float64)
        bias = np.zeros(cout, np.float64)
        branch_offsets = self._offsets[: len(self.convs)]  # the identity's comes last
        for conv, bn, (r, c) in zip(self.convs, self.bns, branch_offsets, strict=True):
            w = np.asarray(conv.get_weights()[0], np.float64)
            scale, shift = self._bn_scale_shift(bn)
            # Depthwise output channel index is in_channel * multiplier + m.
            w = w * scale.reshape(cin, last) if self.depthwise else w * scale
            kernel[r : r + w.shape[0], c : c + w.shape[1]] += w
            bias += shift
        if self.identity_bn is not None:
            r, c = self._offsets[-1]
            scale, shift = self._bn_scale_shift(self.identity_bn)
            if self.depthwise:  # multiplier is 1 here
                kernel[r, c, :, 0] += scale
            else:
                kernel[r, c, np.arange(cin), np.arange(cin)] += scale
            bias += shift
        return kernel.astype(np.float32), bias.astype(np.float32)

    def fold_layer(self) -> keras.layers.Layer:
        """An ordinary built Keras conv with bias, equal to this block in inference mode."""
        kernel, bias = self.folded_weights()
        common = dict(
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            use_bias=True,
            name=self.name,
        )
        if self.depthwise:
            layer = StridedDepthwiseConv2D(
                self.folded_kernel_size, depth_multiplier=self.depth_multiplier, **common
            )
        else:
            layer = keras.layers.Conv2D(self.filters, self.folded_kernel_size, **common)
        layer.build(self.input_spec_shape)
        layer.set_weights([kernel, bias])
        return layer

    @property
    def input_spec_shape(self) -> tf.TensorShape:
        return tf.TensorShape([None, *self._input_hw, self._in_channels])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_sizes=[list(k) for k in self.kernel_sizes],
            use_1x1=self.use_1x1,
            use_identity=self.use_identity,
            strides=list(self.strides),
            dilation_rate=list(self.dilation_rate),
            depthwise=self.depthwise,
            depth_multiplier=self.depth_multiplier,
            epsilon=self.epsilon,
            momentum=self.momentum,
            padding=self.padding,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer)
            if self.kernel_regularizer
            else None,
        )
        return config
