"""The pipelines dlforge runs: the data each reads, its default family and its wiring.

Plain data, so the CLI lists and checks pipelines without importing TensorFlow or TFX.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType

PIPELINES_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline.

    Attributes:
        name: Pipeline name, e.g. "digits"; its models are named `<name>_<family>`.
        wiring: Module with `create_pipeline(config, *, pipeline_name, pipeline_root,
            local_metadata, trainer_job)`, which builds the TFX pipeline.
        default_family: The model family (or agent) trained when the config names none.
        summary: One line on what it learns from which data.
        data_module: Module that writes the embedded data set as span 0 (`write_splits(folder,
            seed=...)`, `SPLIT_NAMES`); "" when the pipeline reads no data set (an agent plays
            an environment).
        preprocessing_fn: Dotted path of the Transform `preprocessing_fn`.
        evaluation: How a model is judged: by TFMA's Evaluator, "classification" (accuracy) or
            "regression" (root mean squared error); or "family": by the family's own metric on
            the test split (`components.family_evaluator`: reconstruction error, ELBO, class
            coverage of generated digits, perplexity), which TFMA cannot compute.
        min_accuracy: A classifier's lowest test accuracy that is blessed, unless the config
            sets one.
        device_model: Whether the pipeline compresses the blessed model and pushes a TFLite twin.
        user_data: Whether `--data` may add a span of the user's rows (its ingest checks exist).
        data_of: The pipeline whose raw data, schema and expectation suite this one reads, when
            it models another pipeline's data set; "" for its own.
    """

    name: str
    wiring: str
    default_family: str
    summary: str
    data_module: str = ""
    preprocessing_fn: str = ""
    evaluation: str = "classification"
    min_accuracy: float = 0.95
    device_model: bool = False
    user_data: bool = False
    data_of: str = ""

    @property
    def schema_file(self) -> str:
        """The curated schema of the raw data (with drift and skew comparators)."""
        return os.path.join(PIPELINES_DIR, "schemas", self.data_of or self.name, "schema.pbtxt")

    @property
    def suite_file(self) -> str:
        """The Great Expectations suite of the raw data, derived from the schema."""
        return os.path.join(PIPELINES_DIR, "expectations", f"{self.data_of or self.name}.json")

    def data(self) -> ModuleType:
        """The data module (imports it)."""
        return importlib.import_module(self.data_module)

    def wiring_module(self) -> ModuleType:
        """The wiring module (imports TFX)."""
        return importlib.import_module(self.wiring)


PIPELINES: dict[str, PipelineEntry] = {
    entry.name: entry
    for entry in (
        PipelineEntry(
            name="digits",
            wiring="pipelines.supervised",
            default_family="cnn",
            summary="8x8 handwritten digits (scikit-learn) -> one of 10 classes",
            data_module="models.data.digits",
            preprocessing_fn="models.preprocessing.preprocessing_fn",
            evaluation="classification",
            device_model=True,
            user_data=True,
        ),
        PipelineEntry(
            name="text",
            wiring="pipelines.supervised",
            default_family="text_transformer",
            summary="passages of the Python documentation (pydoc_data) -> one of 7 chapters",
            data_module="models.data.text",
            preprocessing_fn="models.text_preprocessing.preprocessing_fn",
            evaluation="classification",
            # Seven chapters, the largest holds 29% of the passages.
            min_accuracy=0.5,
        ),
        PipelineEntry(
            name="co2",
            wiring="pipelines.supervised",
            default_family="lstm",
            summary="weekly Mauna Loa CO2 (statsmodels) -> next week's ppm, vs seasonal naive",
            data_module="models.data.co2",
            preprocessing_fn="models.forecast_preprocessing.preprocessing_fn",
            evaluation="regression",
        ),
        PipelineEntry(
            name="generative",
            wiring="pipelines.supervised",
            default_family="vae",
            summary="8x8 digits (scikit-learn) -> autoencoder, VAE or GAN, judged by "
            "reconstruction error, ELBO or class coverage",
            data_module="models.data.digits",
            preprocessing_fn="models.preprocessing.preprocessing_fn",
            evaluation="family",
            data_of="digits",
        ),
        PipelineEntry(
            name="text_lm",
            wiring="pipelines.supervised",
            default_family="transformer_lm",
            summary="passages of the Python documentation (pydoc_data) -> next character, "
            "judged by perplexity",
            data_module="models.data.text",
            preprocessing_fn="models.text_preprocessing.preprocessing_fn",
            evaluation="family",
            data_of="text",
        ),
        PipelineEntry(
            name="cartpole",
            wiring="pipelines.rl",
            default_family="dqn",
            summary="CartPole-v1 (gymnasium): DQN, REINFORCE or actor-critic, blessed at a mean "
            "return of 475",
            device_model=True,
        ),
        PipelineEntry(
            name="frozenlake",
            wiring="pipelines.rl",
            default_family="qlearning",
            summary="FrozenLake-v1 4x4 slippery: tabular Q-learning, blessed at 0.70 success rate",
            device_model=True,
        ),
    )
}


def get_pipeline(name: str) -> PipelineEntry:
    """Returns a pipeline by name.

    Raises:
        ValueError: If there is no such pipeline; the message lists the known ones.
    """
    if name not in PIPELINES:
        raise ValueError(f"Expected a pipeline in {list(PIPELINES)}, received {name!r}.")
    return PIPELINES[name]
