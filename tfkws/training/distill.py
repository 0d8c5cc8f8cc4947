"""Knowledge distillation: train a small (MCU-sized) model on the soft predictions of bigger ones.

A KWS model small enough for a Cortex-M often cannot learn from 1-hot labels alone what a model
ten times its size learns; the bigger models' softened outputs carry which words sound alike
(Hinton et al. 2015). Each training step of the student uses

    (1 - w) * CE(labels, student) + w * T^2 * CE(p_T, softmax(student / T)),
    p_T = softmax(log(mean_i softmax(teacher_i)) / T)

on the same augmented batch. Teachers are trained ``tfkws train`` runs (any registered model,
folded for speed, their float weights frozen) with the student's exact feature config and
labels; several teachers are averaged (an ensemble is a better teacher than its best member).
Only training changes: the student's graph, weight files and export are those of a plain run.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import TfkwsError
from tfkws.features.config import FeatureConfig
from tfkws.folding.fold import fold_model
from tfkws.runs.config import RunConfig
from tfkws.runs.files import BEST_WEIGHTS, RUN_CONFIG
from tfkws.runs.model import load_trained_model
from tfkws.training.inner_model import InnerModelWeights
from tfkws.training.sandwich import soft_cross_entropy


def check_teachers(
    run_dirs: list[str | os.PathLike], features: FeatureConfig, labels: list[str]
) -> None:
    """One-line error unless every run is a trained float run with these features and labels
    (checked before a student's run folder is written)."""
    for run_dir in run_dirs:
        if not os.path.exists(os.path.join(run_dir, RUN_CONFIG)):
            raise TfkwsError(f"{run_dir}: not a tfkws run folder (no {RUN_CONFIG}); --teacher")
        run = RunConfig.load(run_dir)
        if run.train.qat:
            raise TfkwsError(f"{run_dir}: a QAT run; distil from its float source run")
        if not os.path.exists(os.path.join(run_dir, BEST_WEIGHTS)):
            raise TfkwsError(f"{run_dir}: no {BEST_WEIGHTS} (teacher training did not finish)")
        if run.features.to_dict() != features.to_dict():
            raise TfkwsError(f"{run_dir}: teacher's feature config differs from the student's")
        if list(run.labels) != list(labels):
            raise TfkwsError(
                f"{run_dir}: teacher's labels {list(run.labels)} differ from the student's "
                f"{list(labels)}"
            )


def load_teachers(
    run_dirs: list[str | os.PathLike], features: FeatureConfig, labels: list[str]
) -> keras.Model:
    """One frozen Keras model: the teacher runs' mean class probabilities (logits of the mean).

    Every run must have the student's feature config and labels (``check_teachers``).
    """
    if not run_dirs:
        raise TfkwsError("distillation needs at least one teacher run")
    check_teachers(run_dirs, features, labels)
    inp = keras.Input(features.shape, name="features")
    probs = []
    for i, run_dir in enumerate(run_dirs):
        teacher = fold_model(load_trained_model(run_dir)[0])
        teacher.trainable = False
        teacher._name = f"teacher_{i}"
        probs.append(keras.layers.Softmax(name=f"teacher_{i}_probs")(teacher(inp)))
    mean = probs[0] if len(probs) == 1 else keras.layers.Average(name="teacher_mean")(probs)
    # Logits of the ensemble (log of its mean probabilities): softmax(./T) works as for one model.
    logits = keras.layers.Lambda(lambda p: tf.math.log(p + 1e-12), name="teacher_logits")(mean)
    ensemble = keras.Model(inp, logits, name="teachers")
    ensemble.trainable = False
    return ensemble


class _Untracked:
    """A plain holder Keras does not track (a Model attribute would enter checkpoints)."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model


class DistillModel(InnerModelWeights, keras.Model):
    """Wraps a student; ``fit`` adds the teachers' softened predictions to the label loss.

    Inference (``call``, ``evaluate``, validation in ``fit``) is the student alone, and
    ``save_weights`` / ``load_weights`` / ``count_params`` act on it, so weight files and
    checkpoints' model weights are the plain student's.
    """

    def __init__(
        self,
        student: keras.Model,
        teacher: keras.Model,
        weight: float = 0.5,
        temperature: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=kwargs.pop("name", f"{student.name}_distill"), **kwargs)
        if not 0.0 <= float(weight) <= 1.0 or float(temperature) <= 0.0:
            raise TfkwsError(
                f"distillation needs 0 <= weight <= 1 and temperature > 0, got {weight}, "
                f"{temperature}"
            )
        self.student = student
        # Held untracked: the teachers are frozen inputs of the loss, not part of the trained
        # model, so checkpoints hold the student (and optimizer) only.
        self._teacher = _Untracked(teacher)
        self.weight = float(weight)
        self.temperature = float(temperature)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.student(inputs, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        t = self.temperature
        soft = tf.stop_gradient(tf.nn.softmax(self._teacher.model(x, training=False) / t, axis=-1))
        with tf.GradientTape() as tape:
            logits = self.student(x, training=True)
            loss = (1.0 - self.weight) * self.compute_loss(x, y, logits, sample_weight)
            if self.weight:
                loss += self.weight * (t * t) * soft_cross_entropy(soft, logits / t)
        variables = self.student.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return self.compute_metrics(x, y, logits, sample_weight)

    def inner_model(self) -> keras.Model:
        return self.student
