"""Small int8 models for firmware_gen's tests and benchmarks (needs TensorFlow + tf_keras).

Here, not in the package: firmware_gen itself never imports TensorFlow (benchmarks put tests/ on
``sys.path`` to use ``convert``).

Built with tf_keras and the TFLite converter (full int8, static batch 1), cached per process.
``edit_ops`` rewrites op codes in a flatbuffer to make models TFLM cannot run.
"""

from __future__ import annotations

import functools
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def convert(
    model, input_shape: tuple[int, ...], int8: bool = True, seed: int = 0, samples: int = 8
) -> bytes:
    """Keras model -> .tflite bytes; full-integer int8 with random representative data."""
    import numpy as np
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:

        def representative():
            rng = np.random.default_rng(seed)
            for _ in range(samples):
                yield [rng.standard_normal((1, *input_shape)).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


@functools.cache
def tiny_model(kind: str = "conv", int8: bool = True) -> bytes:
    """``conv``: Conv2D/DepthwiseConv2D/pool/Dense/Softmax on 12x10x1; ``dense``: 2 Dense on 16."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    if kind == "conv":
        shape: tuple[int, ...] = (12, 10, 1)
        i = keras.Input(shape, batch_size=1)
        x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(i)
        x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = keras.layers.AveragePooling2D((2, 1))(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(3)(x)
        x = keras.layers.Softmax()(x)
    elif kind == "dense":
        shape = (16,)
        i = keras.Input(shape, batch_size=1)
        x = keras.layers.Dense(8, activation="relu")(i)
        x = keras.layers.Dense(4)(x)
    else:
        raise ValueError(kind)
    return convert(keras.Model(i, x), shape, int8=int8)


def edit_ops(data: bytes, replace: dict[str, str], custom_name: str = "MyCustomOp") -> bytes:
    """Re-serialise ``data`` with some builtin op codes swapped (``{"SOFTMAX": "REDUCE_PROD"}``);
    the target ``"CUSTOM"`` makes it a custom op named ``custom_name``."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    codes = schema.BuiltinOperator
    for oc in model.operatorCodes:
        name = next(
            (
                k
                for k, v in vars(codes).items()
                if v == max(oc.builtinCode, oc.deprecatedBuiltinCode)
            ),
            None,
        )
        if name in replace:
            new = getattr(codes, replace[name])
            oc.builtinCode = new
            oc.deprecatedBuiltinCode = min(new, 127)
            if replace[name] == "CUSTOM":
                oc.customCode = custom_name
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())
