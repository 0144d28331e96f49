"""The Tuner: TFX's component with an executor that keeps the trials' TensorBoard logs."""

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.tuner import executor


class Tuner(tfx.components.Tuner):
    """TFX's Tuner (same inputs, outputs and parameters); see `executor.Executor`."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
