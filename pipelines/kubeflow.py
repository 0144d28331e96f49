"""Compiles a pipeline for Kubeflow Pipelines v2 or Vertex AI Pipelines (KubeflowV2DagRunner).

Compiling only writes a file; nothing is uploaded or run. The remote run needs an image with
dlforge installed (TFX finds `run_fn`, `preprocessing_fn` and the custom executors by dotted
path) and a remote home holding `data/<pipeline>/` and `schemas/<pipeline>/schema.pbtxt`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import posixpath
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from models.files import write_json_atomically
from pipelines import catalog
from pipelines.config import PipelineConfig, StageResources

# Where each target can keep the pipeline root (and the home): Vertex AI only on Cloud Storage,
# Kubeflow Pipelines on any object store its launcher reads.
TARGETS = {"kubeflow": ("gs://", "s3://"), "vertex": ("gs://",)}
# The entry point that runs a step's TFX module on an s3:// root (see pipelines/kfp_step.py).
S3_STEP_MODULE = "pipelines.kfp_step"
# The key of `config.kubeflow.resources` that applies to every stage not named.
DEFAULT_RESOURCES = "default"
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
            the target can use, or `image` is empty, or `config.kubeflow` names resources of
            a stage the pipeline does not have or Vertex AI machines that do not fit the
            trainer's strategy.
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
    document = pipeline_document(config, target=target, image=image, pipeline_root=pipeline_root)
    write_json_atomically(output_path, document)
    return document


def pipeline_document(
    config: PipelineConfig, *, target: str, image: str, pipeline_root: str
) -> dict[str, Any]:
    """The document `compile_pipeline` writes, without checking where the home and root are.

    `compile_pipeline` refuses local paths because a remote step cannot reach them; running
    the compiled tasks on this machine (`pipelines.kfp_local`) needs exactly those.

    Args:
        config: The run's configuration (its `home` is used as given).
        target: "kubeflow" or "vertex".
        image: Container image of every step.
        pipeline_root: Where the steps write their artifacts.

    Returns:
        The PipelineSpec ("kubeflow") or the PipelineJob around it ("vertex"), with the
        resources, Beam arguments and Vertex AI training of `config.kubeflow` applied.

    Raises:
        ValueError: As `compile_pipeline`, except for the locations.
    """
    if target not in TARGETS:
        raise ValueError(f"Expected a target in {sorted(TARGETS)}, received {target!r}.")
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        )
    )
    remote = dataclasses.replace(config, beam_args=remote_beam_args(config, image))
    job = runner.run(
        _remote_pipeline(remote, pipeline_root, vertex_training_config(config, image)),
        write_out=False,
    )
    job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
    apply_resources(job["pipelineSpec"], config.kubeflow.resources)
    if pipeline_root.startswith("s3://"):
        run_steps_through(job["pipelineSpec"]["deploymentSpec"], S3_STEP_MODULE)
    return job["pipelineSpec"] if target == "kubeflow" else job


def run_steps_through(deployment_spec: dict[str, Any], module: str) -> None:
    """Makes every container command `python -m M` (executors and drivers) `python -m module M`.

    Args:
        deployment_spec: The PipelineSpec's `deploymentSpec`, changed in place.
        module: The wrapping entry point, e.g. `S3_STEP_MODULE`.
    """

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            command = node.get("command")
            if isinstance(command, list) and command[:2] == ["python", "-m"] and len(command) == 3:
                node["command"] = ["python", "-m", module, command[2]]
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(deployment_spec)


def vertex_training_config(config: PipelineConfig, image: str) -> dict[str, Any] | None:
    """The Trainer's custom_config entries that make it a Vertex AI custom training job.

    The job's worker pools (CustomJobSpec.worker_pool_specs) come from
    `config.kubeflow.vertex_training`: pool 0 is one chief, pool 1 the other replicas, every
    replica on the pipeline image (TFX sets the command that runs `run_fn`).

    Returns:
        The entries TFX's Vertex Trainer reads, or None when Vertex AI training is off.

    Raises:
        ValueError: When the machines and the trainer's strategy do not fit together: several
            replicas need "multi_worker_mirrored", a TPU needs "tpu" on one "cloud-tpu" replica.
    """
    training = config.kubeflow.vertex_training
    if not training.project:
        return None
    strategy = config.trainer.strategy
    tpu = training.accelerator.startswith("TPU_")
    if training.replicas > 1 and strategy != "multi_worker_mirrored":
        raise ValueError(
            f"Expected trainer strategy 'multi_worker_mirrored' for {training.replicas} Vertex AI "
            f"replicas, received {strategy!r}."
        )
    if tpu != (strategy == "tpu"):
        raise ValueError(
            "Expected trainer strategy 'tpu' exactly when the Vertex AI accelerator is a TPU, "
            f"received strategy {strategy!r} and accelerator {training.accelerator!r}."
        )
    if tpu and (training.machine_type != "cloud-tpu" or training.replicas != 1):
        raise ValueError(
            "Expected one replica of machine_type 'cloud-tpu' for a TPU, received "
            f"{training.replicas} of {training.machine_type!r}."
        )
    machine = {"machine_type": training.machine_type}
    if training.accelerator:
        machine["accelerator_type"] = training.accelerator
        machine["accelerator_count"] = training.accelerator_count
    counts = [1] if training.replicas == 1 else [1, training.replicas - 1]
    pools = [
        {
            "machine_spec": dict(machine),
            "replica_count": count,
            "container_spec": {"image_uri": image},
        }
        for count in counts
    ]
    vertex = tfx.extensions.google_cloud_ai_platform
    return {
        vertex.ENABLE_VERTEX_KEY: True,
        vertex.VERTEX_REGION_KEY: training.region,
        vertex.TRAINING_ARGS_KEY: {
            "project": training.project,
            "job_spec": {"worker_pool_specs": pools},
        },
    }


def remote_beam_args(config: PipelineConfig, image: str) -> tuple[str, ...]:
    """The Beam arguments of the compiled pipeline's Beam stages.

    `config.kubeflow.beam_args` when given, else the local `config.beam_args`. Dataflow workers
    run the pipeline image (it has dlforge, whose `preprocessing_fn` Transform's workers call),
    so `--sdk_container_image=<image>` is added for DataflowRunner unless it is set.
    """
    args = config.kubeflow.beam_args or config.beam_args
    if "--runner=DataflowRunner" in args and not any(
        arg.startswith("--sdk_container_image=") for arg in args
    ):
        args = (*args, f"--sdk_container_image={image}")
    return tuple(args)


def apply_resources(spec: dict[str, Any], resources: Mapping[str, StageResources]) -> None:
    """Sets each stage's container `resources` in a compiled pipeline spec, in place.

    Args:
        spec: The PipelineSpec.
        resources: Stage (task) name -> resources; "default" applies to every container stage
            not named.

    Raises:
        ValueError: If a name is neither "default" nor a container stage of the pipeline.
    """
    executors = spec["deploymentSpec"]["executors"]
    containers = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        if "container" in executors[label]:
            containers[name] = executors[label]["container"]
    unknown = sorted(set(resources) - set(containers) - {DEFAULT_RESOURCES})
    if unknown:
        raise ValueError(
            f"Expected resources for stages among {sorted(containers)} or "
            f"{DEFAULT_RESOURCES!r}, received {unknown}."
        )
    for name, container in containers.items():
        stage = resources.get(name, resources.get(DEFAULT_RESOURCES))
        if stage is not None:
            container["resources"] = _resource_spec(stage)


def _resource_spec(stage: StageResources) -> dict[str, Any]:
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=stage.cpu_limit,
        memory_limit=stage.memory_limit,
        cpu_request=stage.cpu_request,
        memory_request=stage.memory_request,
    )
    if stage.accelerator:
        spec.accelerator.type = stage.accelerator
        spec.accelerator.count = stage.accelerator_count
    # The message's JSON form (camelCase, int64 count as a string), as the KFP SDK writes it.
    return json_format.MessageToDict(spec)


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


def _remote_pipeline(
    config: PipelineConfig, pipeline_root: str, trainer_job: dict[str, Any] | None
) -> tfx.dsl.Pipeline:
    entry = catalog.get_pipeline(config.pipeline)
    # The curated schema is read from the remote home, where it is uploaded beside the data.
    schema = (
        {"schema_file": posixpath.join(config.home, "schemas", config.pipeline, "schema.pbtxt")}
        if entry.data_module
        else {}
    )
    # KFP pipeline names match [a-z0-9][a-z0-9-]*; the orchestrator brings its own ML Metadata.
    return entry.wiring_module().create_pipeline(
        config,
        **schema,
        pipeline_name=config.pipeline_name.replace("_", "-"),
        pipeline_root=pipeline_root,
        local_metadata=False,
        trainer_job=trainer_job,
    )
