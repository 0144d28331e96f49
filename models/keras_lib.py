"""tf_keras (Keras 2), the Keras of every dlforge model, with AutoGraph told to leave it alone.

Import Keras from here: `from models.keras_lib import keras`.

AutoGraph rewrites the Python source of every function a `tf.function` calls, unless a rule says
the function's module must not be converted. TF 2.16 has such a rule for `keras` but not for
`tf_keras`, the package Keras 2 moved to, so it rewrites Keras' own training loop, layers and
losses the first time each is traced. On 2 cores the first `fit` of the digits CNN took 47-91 s
that way and 4-10 s with the rule below, which restores TF 2.15's behaviour, where Keras 2 was
the `keras` package. Our own layers' and models' `call`s are still converted: Keras converts
them explicitly when it calls them. AutoGraph's rule list is TF's only switch for this (a
private module of TF 2.16).
"""

from __future__ import annotations

import tf_keras as keras
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.core import config_lib

if not any(
    isinstance(rule, config_lib.DoNotConvert) and rule.matches("tf_keras.src")
    for rule in autograph_config.CONVERSION_RULES
):
    autograph_config.CONVERSION_RULES = (
        config_lib.DoNotConvert("tf_keras"),
        *autograph_config.CONVERSION_RULES,
    )

__all__ = ["keras"]
