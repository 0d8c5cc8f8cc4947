"""Sandwich-rule training of a slimmable supernet, with in-place distillation (US-Nets).

Each step trains, on one batch and with one optimizer update of the summed losses:

* the largest width on the labels (the compiled loss);
* the smallest width and ``num_random`` widths drawn from the others on the largest width's
  soft predictions (cross-entropy to ``softmax(teacher / T)``, no gradient into the teacher).

Bounding the widths (largest and smallest every step) trains the whole range; distillation from
the largest width is free (its forward pass is already done) and a better target than labels for
small widths (Yu & Huang 2019). Switchable BatchNorm gives every width its own statistics, each
updated only in the steps that train that width.

``cost_total`` counts, per step, the MACs of every width trained relative to one full-width
step (``1 + rel(smallest) + sum rel(random)``): the cost of training all widths together in
"full-model steps". The ``width_cost`` metric is its per-step mean over the epoch. (The masked
supernet computes every width at full size on CPU/GPU; the counter reports what a sliced
implementation would spend, which is what the comparison with training one model is about.)
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfkws.errors import ModelError
from tfkws.layers.slimmable_base import (
    model_widths,
    relative_costs,
    set_width_index,
    slimmable_layers,
)
from tfkws.training.inner_model import InnerModelWeights


def soft_cross_entropy(teacher_probs: tf.Tensor, student_logits: tf.Tensor) -> tf.Tensor:
    """Mean over the batch of ``-sum(p_teacher * log softmax(student))``."""
    log_p = tf.nn.log_softmax(student_logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(teacher_probs * log_p, axis=-1))


class SandwichModel(InnerModelWeights, keras.Model):
    """Wraps a functional slimmable supernet; ``fit`` trains it with the sandwich rule.

    Inference (``call``, ``evaluate``, validation in ``fit``) runs the supernet at its current
    width, which every train step leaves at the largest. ``save_weights`` / ``load_weights`` /
    ``count_params`` act on the supernet itself, so weight files are the plain supernet's.
    """

    def __init__(
        self,
        supernet: keras.Model,
        num_random: int = 2,
        temperature: float = 1.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=kwargs.pop("name", f"{supernet.name}_sandwich"), **kwargs)
        if not slimmable_layers(supernet):
            raise ModelError(f"model {supernet.name!r} has no slimmable layers to sandwich-train")
        if int(num_random) < 0 or float(temperature) <= 0.0:
            raise ModelError("sandwich training needs num_random >= 0 and temperature > 0")
        self.supernet = supernet
        self.widths = model_widths(supernet)
        self.num_random = int(num_random) if len(self.widths) > 2 else 0
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.relative_costs = tuple(relative_costs(supernet))
        self.cost_total = tf.Variable(0.0, trainable=False, dtype=tf.float64, name="cost_total")
        self.steps_total = tf.Variable(0, trainable=False, dtype=tf.int64, name="steps_total")
        # Width indices trained by the last step besides the largest (smallest first).
        self.last_indices = tf.Variable(
            tf.zeros([self._num_sub()], tf.int32), trainable=False, name="last_indices"
        )
        self.cost_tracker = keras.metrics.Mean(name="width_cost")

    def _num_sub(self) -> int:
        return (1 if len(self.widths) > 1 else 0) + self.num_random

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.supernet(inputs, training=training)

    def _sub_indices(self) -> tf.Tensor:
        """[smallest, random...]; stateless in (seed, step) so a resumed run draws the same."""
        parts = [tf.zeros([1 if len(self.widths) > 1 else 0], tf.int32)]
        if self.num_random:
            step = tf.cast(self.optimizer.iterations, tf.int32)
            parts.append(
                tf.random.stateless_uniform(
                    [self.num_random],
                    seed=tf.stack([tf.constant(self.seed, tf.int32), step]),
                    minval=1,
                    maxval=len(self.widths) - 1,
                    dtype=tf.int32,
                )
            )
        return tf.concat(parts, axis=0)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        largest = len(self.widths) - 1
        sub = self._sub_indices()
        t = self.temperature
        with tf.GradientTape() as tape:
            set_width_index(self.supernet, largest)
            logits = self.supernet(x, training=True)
            loss = self.compute_loss(x, y, logits, sample_weight)
            teacher = tf.stop_gradient(tf.nn.softmax(logits / t, axis=-1))
            for j in range(self._num_sub()):
                set_width_index(self.supernet, sub[j])
                student = self.supernet(x, training=True)
                loss += soft_cross_entropy(teacher, student / t) * (t * t)
        variables = self.supernet.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        set_width_index(self.supernet, largest)
        costs = tf.constant(self.relative_costs, tf.float64)
        step_cost = 1.0 + tf.reduce_sum(tf.gather(costs, sub))
        self.cost_total.assign_add(step_cost)
        self.steps_total.assign_add(1)
        self.last_indices.assign(sub)
        self.cost_tracker.update_state(step_cost)
        results = self.compute_metrics(x, y, logits, sample_weight)
        results["width_cost"] = self.cost_tracker.result()
        return results

    def test_step(self, data: Any) -> dict[str, Any]:
        set_width_index(self.supernet, len(self.widths) - 1)
        results = super().test_step(data)
        results.pop("width_cost", None)  # a training-cost metric, meaningless on validation
        return results

    def inner_model(self) -> keras.Model:
        return self.supernet

    def cost_report(self) -> dict[str, float]:
        """Training cost so far, in full-width steps, and per step (1.0 = one plain model)."""
        steps = int(self.steps_total.numpy())
        total = float(self.cost_total.numpy())
        return {"steps": steps, "cost_full_steps": total, "cost_per_step": total / max(steps, 1)}


def wrap_slimmable(model: keras.Model, seed: int = 0) -> keras.Model:
    """``SandwichModel`` for a slimmable supernet, ``model`` itself for any other model.

    The number of random widths per step comes from the builder (``sandwich_random_widths``).
    """
    if not slimmable_layers(model):
        return model
    return SandwichModel(model, getattr(model, "sandwich_random_widths", 2), seed=seed)
