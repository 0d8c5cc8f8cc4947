"""Training wrappers whose weights are those of the model they wrap."""

from __future__ import annotations

from typing import Any

import tf_keras as keras


class InnerModelWeights:
    """Mixin for a ``keras.Model`` that wraps another for training (``SandwichModel``,
    ``DistillModel``): saving, loading and counting act on the wrapped model, so checkpoints
    stay loadable into a freshly built model and report its size."""

    def inner_model(self) -> keras.Model:
        raise NotImplementedError

    def save_weights(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner_model().save_weights(*args, **kwargs)

    def load_weights(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner_model().load_weights(*args, **kwargs)

    def count_params(self) -> int:
        return int(self.inner_model().count_params())
