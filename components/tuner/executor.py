"""The Tuner's executor: TFX's search, then the trials' TensorBoard logs kept.

TFX's Tuner runs the search in its execution's temporary folder, which is deleted once the stage
ends; `models.entrypoints.tuner_fn` writes each trial's TensorBoard logs under
`<that folder>/<TUNER_LOGS>/<trial id>/`. This executor copies them into the `tuner_results`
artifact (`<uri>/logs/<trial id>/`), where `dlforge tensorboard` finds them.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tfx.components.tuner import executor as tuner_executor

from components import storage
from models.entrypoints import TUNER_LOGS

LOGS_DIR = "logs"


def keep_logs(working_dir: str, results_uri: str) -> int:
    """Copies the trials' logs from the search's working folder into the results artifact.

    Returns:
        The number of files copied (0 when the search wrote no logs).
    """
    source = storage.join(working_dir, TUNER_LOGS)
    return (
        storage.copy_tree(source, storage.join(results_uri, LOGS_DIR))
        if (tf.io.gfile.isdir(source))
        else 0
    )


class Executor(tuner_executor.Executor):
    """TFX's Tuner executor, keeping the trials' TensorBoard logs."""

    def Do(  # noqa: N802 - TFX's name.
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, exec_properties)
        (results,) = output_dict["tuner_results"]
        keep_logs(self._get_tmp_dir(), results.uri)
