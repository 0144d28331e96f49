"""Submits a compiled pipeline to Kubeflow Pipelines (v2 API) or to Vertex AI Pipelines.

Both paths first build the request that will be sent, so that `--dry-run` prints exactly that
and sends nothing. Credentials never come from the compiled file or the command line: the
caller passes what it read from the environment (a bearer token for Kubeflow; Vertex AI uses
Google's application default credentials).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KFP_API_PREFIX = "/apis/v2beta1"
DEFAULT_EXPERIMENT = "Default"
# The Kubeflow Pipelines bearer token (e.g. an IAP or Dex token), read from the environment only.
TOKEN_ENV = "DLFORGE_KFP_TOKEN"  # The experiment kfp.Client uses when none is named.
# Vertex AI pipeline job ids.
_VERTEX_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_PARSERS: dict[str, Callable[[str], Any]] = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": lambda text: {"true": True, "false": False}[text.lower()],
}


class SubmitError(RuntimeError):
    """The compiled file, the arguments or the service's answer stop a submission."""


def read_compiled(path: str) -> dict[str, Any]:
    """Reads a file written by `dlforge compile`.

    Raises:
        SubmitError: If the file cannot be read or is not a JSON object.
    """
    try:
        with open(path) as handle:
            document = json.load(handle)
    except OSError as error:
        raise SubmitError(f"Cannot read the compiled pipeline {path}: {error.strerror}.") from error
    except json.JSONDecodeError as error:
        raise SubmitError(f"Expected a compiled pipeline (JSON) in {path}: {error}.") from error
    if not isinstance(document, dict):
        raise SubmitError(f"Expected a JSON object in {path}, received {type(document).__name__}.")
    return document


def parse_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """`["k=v", ...]` from the command line as a dict.

    Raises:
        SubmitError: For a pair without "=" or a name given twice.
    """
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise SubmitError(f"Expected --param NAME=VALUE, received {pair!r}.")
        if name in parameters:
            raise SubmitError(f"Expected each parameter once, received {name!r} twice.")
        parameters[name] = value
    return parameters


def typed_parameters(spec: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """The given parameter values converted to the types the pipeline declares.

    Args:
        spec: The PipelineSpec.
        given: Parameter name -> value as text.

    Raises:
        SubmitError: For a name the pipeline does not take or a value not of its type.
    """
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        expected = f"parameters among {sorted(declared)}" if declared else "no parameters"
        raise SubmitError(f"Expected {expected} for this pipeline, received {unknown}.")
    typed = {}
    for name, text in given.items():
        kind = declared[name].get("parameterType", "STRING")
        if kind not in _PARSERS:
            raise SubmitError(f"Parameter {name!r} is a {kind}, which --param cannot set.")
        try:
            typed[name] = _PARSERS[kind](text)
        except (ValueError, KeyError) as error:
            raise SubmitError(
                f"Expected parameter {name!r} to be a {kind}, received {text!r}."
            ) from error
    return typed


def default_run_name(document: Mapping[str, Any], now: datetime.datetime | None = None) -> str:
    """`<pipeline name>-<UTC date>-<time>`, e.g. digits-cnn-20261202-081500."""
    spec = document.get("pipelineSpec", document)
    name = spec.get("pipelineInfo", {}).get("name", "pipeline")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{name}-{now:%Y%m%d-%H%M%S}"


def _pipeline_spec(document: Mapping[str, Any]) -> dict[str, Any]:
    """The spec in the form kfp.Client sends it (parsed into the proto and written back)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as error:
        raise SubmitError(
            "Expected a Kubeflow PipelineSpec (dlforge compile --target kubeflow); a Vertex "
            f"file holds the PipelineJob around it. The file does not parse: {error}"
        ) from error
    return json_format.MessageToDict(spec)


@dataclass(frozen=True)
class KubeflowSubmission:
    """What `dlforge submit --host` sends.

    Attributes:
        host: The Kubeflow Pipelines API endpoint, e.g. http://localhost:8888.
        experiment: Name of the experiment the run goes into (created when missing).
        run: The body of `POST /apis/v2beta1/runs`, without its `experiment_id` (known only
            once the experiment is looked up or created).
        pipeline_file: The compiled file (kfp.Client reads it again).
        parameters: The run's typed parameter values.
    """

    host: str
    experiment: str
    run: dict[str, Any]
    pipeline_file: str
    parameters: dict[str, Any]


def kubeflow_submission(
    pipeline_file: str,
    *,
    host: str,
    experiment: str,
    run_name: str | None,
    parameters: Mapping[str, str],
    service_account: str | None = None,
) -> KubeflowSubmission:
    """Builds the Kubeflow Pipelines submission of a compiled file.

    Raises:
        SubmitError: If the file is not a Kubeflow pipeline spec, a parameter is wrong, or the
            host is not an http(s) URL.
    """
    if not host.startswith(("http://", "https://")):
        raise SubmitError(f"Expected --host to be an http(s):// URL, received {host!r}.")
    document = read_compiled(pipeline_file)
    spec = _pipeline_spec(document)
    typed = typed_parameters(spec, parameters)
    run = {
        "display_name": run_name or default_run_name(document),
        "pipeline_spec": spec,
        "runtime_config": {"parameters": typed},
    }
    if service_account:
        run["service_account"] = service_account
    return KubeflowSubmission(host.rstrip("/"), experiment, run, pipeline_file, typed)


def describe_kubeflow(submission: KubeflowSubmission, *, has_token: bool) -> str:
    """The requests of a submission, as `--dry-run` prints them."""
    api = submission.host + KFP_API_PREFIX
    authorization = (
        "Authorization: Bearer <the token in the environment, not shown>"
        if has_token
        else "no Authorization header (no token in the environment)"
    )
    body = {**submission.run, "experiment_id": f"<id of experiment {submission.experiment!r}>"}
    return "\n".join(
        [
            f"dry run: nothing sent. Kubeflow Pipelines at {submission.host} would receive, "
            f"with {authorization}:",
            f"GET  {api}/healthz",
            f"GET  {api}/experiments?filter=<display_name = {submission.experiment!r}>",
            f"POST {api}/experiments "
            + json.dumps({"display_name": submission.experiment, "namespace": ""})
            + "  (only when no experiment has that name; namespace: kfp's context, '' unset)",
            f"POST {api}/runs",
            json.dumps(body, indent=1, sort_keys=True),
        ]
    )


def submit_to_kubeflow(
    submission: KubeflowSubmission, *, token: str | None, client_factory=None
) -> dict[str, str]:
    """Sends a submission with kfp.Client: finds or creates the experiment, creates the run.

    Args:
        submission: From `kubeflow_submission`.
        token: A bearer token read from the environment, or None.
        client_factory: Builds the client (default `kfp.Client`); for tests.

    Returns:
        The run id, experiment id and the run's state as the server reported them.

    Raises:
        SubmitError: When the server refuses a request; the message has its status and reason.
    """
    import kfp
    from kfp_server_api.exceptions import ApiException

    factory = client_factory or kfp.Client
    try:
        client = factory(host=submission.host, existing_token=token)
        experiment = client.create_experiment(name=submission.experiment)
        # kfp.Client reads packages named .yaml only; the JSON file is valid YAML as it is.
        with tempfile.TemporaryDirectory() as folder:
            package = os.path.join(folder, "pipeline.yaml")
            shutil.copyfile(submission.pipeline_file, package)
            response = client.run_pipeline(
                experiment_id=experiment.experiment_id,
                job_name=submission.run["display_name"],
                pipeline_package_path=package,
                params=submission.parameters,
                service_account=submission.run.get("service_account"),
            )
    except TimeoutError as error:  # kfp.Client's health check, after 5 attempts.
        raise SubmitError(
            f"Kubeflow Pipelines at {submission.host} did not answer its health check: {error}"
        ) from error
    except ApiException as error:
        raise SubmitError(
            f"Kubeflow Pipelines at {submission.host} refused the request: HTTP {error.status} "
            f"{error.reason}: {_server_message(error.body)}"
        ) from error
    return {
        "run_id": response.run_id,
        "experiment_id": experiment.experiment_id,
        "state": str(response.state),
    }


def _server_message(body: Any) -> str:
    try:
        return json.loads(body).get("message") or str(body)
    except (TypeError, ValueError, AttributeError):
        return str(body)


@dataclass(frozen=True)
class VertexSubmission:
    """What `dlforge submit --vertex` sends: `PipelineService.CreatePipelineJob`.

    Attributes:
        parent: `projects/<project>/locations/<region>`.
        job_id: The pipeline job id (the run name).
        pipeline_job: The PipelineJob message as JSON, as the SDK builds it.
        job: The SDK's `aiplatform.PipelineJob`, which submits it.
        service_account: The service account the job runs as, or None for the default.
    """

    parent: str
    job_id: str
    pipeline_job: dict[str, Any]
    job: Any
    service_account: str | None = None


def vertex_submission(
    pipeline_file: str,
    *,
    project: str,
    region: str,
    run_name: str | None,
    parameters: Mapping[str, str],
    service_account: str | None = None,
    credentials=None,
) -> VertexSubmission:
    """Builds the Vertex AI pipeline job of a compiled file with google-cloud-aiplatform.

    Building sends nothing. With `credentials` None the SDK uses the application default
    credentials of the environment (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata
    server) when it submits; a dry run passes anonymous credentials so nothing is looked up.

    Raises:
        SubmitError: For a missing project or region, a run name Vertex AI refuses as a job
            id, a pipeline root not on Cloud Storage, or a wrong parameter.
    """
    from google.auth import exceptions as auth_exceptions
    from google.cloud import aiplatform
    from google.protobuf import json_format

    if not project or not region:
        raise SubmitError(
            f"Expected --project and --region with --vertex, received {project!r} and {region!r}."
        )
    document = read_compiled(pipeline_file)
    run_name = run_name or default_run_name(document)
    if not _VERTEX_JOB_ID.match(run_name):
        raise SubmitError(
            "Expected a run name of lowercase letters, digits and '-' (a Vertex AI job id, "
            f"at most 128 characters), received {run_name!r}."
        )
    spec = document.get("pipelineSpec", document)
    root = document.get("runtimeConfig", {}).get("gcsOutputDirectory") or spec.get(
        "defaultPipelineRoot", ""
    )
    if not root.startswith("gs://"):
        raise SubmitError(
            f"Expected the pipeline root on Cloud Storage (gs://) for Vertex AI, received {root!r}."
        )
    typed = typed_parameters(spec, parameters)
    try:
        job = aiplatform.PipelineJob(
            display_name=run_name,
            template_path=pipeline_file,
            job_id=run_name,
            parameter_values=typed,
            project=project,
            location=region,
            credentials=credentials,
        )
    except auth_exceptions.GoogleAuthError as error:
        raise SubmitError(
            "Expected Google application default credentials in the environment "
            f"(GOOGLE_APPLICATION_CREDENTIALS, gcloud or a metadata server): {error}"
        ) from error
    # The message PipelineJob.submit sends; the SDK's public `gca_resource` exists only once
    # the job is created, so the built message is read from where submit reads it.
    resource = job._gca_resource
    if service_account:
        resource.service_account = service_account  # As submit(service_account=...) sets it.
    message = json_format.MessageToDict(resource._pb)
    parent = f"projects/{project}/locations/{region}"
    return VertexSubmission(parent, run_name, message, job, service_account)


def describe_vertex(submission: VertexSubmission) -> str:
    """The request of a Vertex submission, as `--dry-run` prints it."""
    request = {
        "parent": submission.parent,
        "pipelineJobId": submission.job_id,
        "pipelineJob": submission.pipeline_job,
    }
    region = submission.parent.rsplit("/", 1)[-1]
    return "\n".join(
        [
            "dry run: nothing sent. Vertex AI would receive PipelineService.CreatePipelineJob "
            f"at {region}-aiplatform.googleapis.com, with the application default credentials "
            "of the environment:",
            json.dumps(request, indent=1, sort_keys=True),
        ]
    )


def submit_to_vertex(submission: VertexSubmission) -> str:
    """Creates the pipeline job on Vertex AI and returns its resource name.

    Raises:
        SubmitError: When Vertex AI refuses the job or credentials are missing.
    """
    from google.api_core import exceptions as google_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        submission.job.submit(service_account=submission.service_account)
    except (google_exceptions.GoogleAPICallError, auth_exceptions.GoogleAuthError) as error:
        raise SubmitError(f"Vertex AI refused the pipeline job: {error}") from error
    return submission.job.resource_name


def run_command(args, environ: Mapping[str, str], output: Callable[[str], None] = print) -> int:
    """`dlforge submit`: builds the submission, then prints it (`--dry-run`) or sends it.

    Args:
        args: The parsed command line (file, host or vertex, project, region, experiment,
            run_name, param, service_account, dry_run).
        environ: The environment; `DLFORGE_KFP_TOKEN` is the Kubeflow bearer token.
        output: Where lines go.

    Returns:
        0 once submitted (or printed).

    Raises:
        SubmitError: For a bad file, arguments, or a refused submission.
    """
    parameters = parse_parameters(args.param or [])
    if args.vertex:
        if args.experiment is not None:
            raise SubmitError("Expected --experiment with --host only (a Kubeflow experiment).")
        from google.auth.credentials import AnonymousCredentials

        submission = vertex_submission(
            args.file,
            project=args.project or "",
            region=args.region or "",
            run_name=args.run_name,
            parameters=parameters,
            service_account=args.service_account,
            credentials=AnonymousCredentials() if args.dry_run else None,
        )
        if args.dry_run:
            output(describe_vertex(submission))
            return 0
        name = submit_to_vertex(submission)
        output(f"dlforge: submitted {submission.job_id} to Vertex AI: {name}")
        return 0
    if args.project or args.region:
        raise SubmitError("Expected --project and --region with --vertex only.")
    token = environ.get(TOKEN_ENV) or None
    submission = kubeflow_submission(
        args.file,
        host=args.host,
        experiment=args.experiment or DEFAULT_EXPERIMENT,
        run_name=args.run_name,
        parameters=parameters,
        service_account=args.service_account,
    )
    if args.dry_run:
        output(describe_kubeflow(submission, has_token=token is not None))
        return 0
    result = submit_to_kubeflow(submission, token=token)
    output(
        f"dlforge: submitted run {submission.run['display_name']} ({result['run_id']}, "
        f"state {result['state']}) to experiment {submission.experiment!r} at {submission.host}"
    )
    return 0
