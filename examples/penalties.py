"""User penalties for `kind: package.module:name` in a circlereg config.

    model:
      regularizers:
        - {target: kernel, kind: "examples.penalties:group_lasso"}
        - {target: activity, kind: "examples.penalties:HoyerSparsity", placement: pre_activation}

A function takes a tensor and returns a scalar; a class is instantiated without arguments and
called the same way (its get_config keeps it serialisable). Run from the project folder (or
put it on PYTHONPATH) so that `examples` can be imported.
"""

import keras
from keras import ops


def group_lasso(weights):
    """0.001 * sum over units of the L2 norm of each unit's incoming weights: prunes whole
    hidden units rather than single weights.

    >>> round(float(group_lasso(ops.ones((4, 3)))), 6)  # three units, each of norm 2
    0.006
    """
    return 0.001 * ops.sum(ops.sqrt(ops.sum(ops.square(weights), axis=0) + 1e-12))


@keras.saving.register_keras_serializable(package="examples")
class HoyerSparsity(keras.regularizers.Regularizer):
    """strength * (sum|x|)^2 / sum(x^2): small when few entries are non-zero (Hoyer, 2004).

    >>> round(float(HoyerSparsity(strength=1.0)(ops.convert_to_tensor([[1.0, 0.0, 0.0]]))), 6)
    1.0
    """

    def __init__(self, strength: float = 1e-4):
        self.strength = strength

    def __call__(self, x):
        l1 = ops.sum(ops.absolute(x))
        return self.strength * ops.square(l1) / (ops.sum(ops.square(x)) + 1e-12)

    def get_config(self):
        return {"strength": self.strength}
