"""Compiles a pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines (KubeflowV2DagRunner).

Compiling only writes a file; nothing is uploaded or run. The remote run needs an image with
dlforge installed (TFX finds `run_fn`, `preprocessing_fn` and the custom executors by dotted
path) and a remote home holding `data/<pipeline>/` and `schemas/<pipeline>/schema.pbtxt`.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
from typing import Any

from tfx import v1 as tfx

from models.files import write_json_atomically
from pipelines import digits
from pipelines.config import PipelineConfig

# Where each target can keep the pipeline root (and the home): Vertex AI only on Cloud Storage,
# Kubeflow Pipelines on any object store its launcher reads.
TARGETS = {"kubeflow": ("gs://", "s3://", "minio://"), "vertex": ("gs://",)}
# Stamps of the compiling environment, not of the pipeline.
_VOLATILE_LABELS = ("tfx_version", "tfx_py_version")


def compile_pipeline(
    config: PipelineConfig, *, target: str, output_path: str, image: str, pipeline_root: str
) -> dict[str, Any]:
    """Compiles the configured pipeline into a JSON file for a remote orchestrator.

    Both targets get the same pipeline spec (KFP IR schema 2.1.0, the only one Kubeflow
    Pipelines accepts; Vertex AI accepts it too), with `defaultPipelineRoot` set. They differ in
    the document around it, because the two services read different messages:
    - "kubeflow": the `PipelineSpec` itself. The Kubeflow Pipelines v2 API server takes only a
      pipeline spec (JSON is valid YAML); it rejects the `PipelineJob` wrapper.
    - "vertex": the `PipelineJob` that KubeflowV2DagRunner emits (display name, TFX labels,
      `runtimeConfig.gcsOutputDirectory` = the pipeline root, and the spec under
      `pipelineSpec`), as `google.cloud.aiplatform.PipelineJob(template_path=...)` loads it.

    Args:
        config: The run's configuration. Its `home` must be a URI on the target's storage: the
            data is read from `<home>/data/<pipeline>`, the schema from
            `<home>/schemas/<pipeline>/schema.pbtxt`, and blessed models are pushed to
            `<home>/serving/<model_name>`.
        target: "kubeflow" or "vertex".
        output_path: Local JSON file to write (replaced atomically); its folder must exist.
        image: Container image of every step, with dlforge and its locked stack installed.
        pipeline_root: URI under which the steps write their artifacts.

    Returns:
        The written document, parsed.

    Raises:
        ValueError: If `target` is unknown, or `pipeline_root` or `config.home` is not a URI
            the target can use, or `image` is empty.
        FileNotFoundError: If the folder of `output_path` does not exist.
    """
    if target not in TARGETS:
        raise ValueError(f"Expected a target in {sorted(TARGETS)}, received {target!r}.")
    for name, uri in (("pipeline_root", pipeline_root), ("config.home", config.home)):
        if not uri.startswith(TARGETS[target]):
            raise ValueError(
                f"Expected {name} to be a URI starting with one of {list(TARGETS[target])} for "
                f"target {target!r}, received {uri!r}."
            )
    if not image:
        raise ValueError(f"Expected a container image, received {image!r}.")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Expected the folder of output_path to exist, received {output_path!r} "
            f"({folder} is not a folder)."
        )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        )
    )
    job = runner.run(_remote_pipeline(config, pipeline_root), write_out=False)
    job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
    document = job["pipelineSpec"] if target == "kubeflow" else job
    write_json_atomically(output_path, document)
    return document


def normalized_json(document: dict[str, Any]) -> str:
    """The compiled document as stable text for golden files.

    Drops what stamps the compiling environment rather than the pipeline (the TFX and Python
    versions in `sdkVersion` and the labels); keys are sorted. The document is not changed.

    Args:
        document: A document returned by `compile_pipeline`, for either target.

    Returns:
        Indented JSON with sorted keys, ending in a newline.
    """
    document = copy.deepcopy(document)
    spec = document.get("pipelineSpec", document)
    spec.pop("sdkVersion", None)
    for label in _VOLATILE_LABELS:
        document.get("labels", {}).pop(label, None)
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _remote_pipeline(config: PipelineConfig, pipeline_root: str) -> tfx.dsl.Pipeline:
    # KFP pipeline names match [a-z0-9][a-z0-9-]*; the orchestrator brings its own ML Metadata.
    return digits.create_pipeline(
        config,
        schema_file=posixpath.join(config.home, "schemas", config.pipeline, "schema.pbtxt"),
        pipeline_name=config.pipeline_name.replace("_", "-"),
        pipeline_root=pipeline_root,
        local_metadata=False,
    )
