"""Tests of `dlforge submit`: Kubeflow Pipelines through kfp.Client, Vertex AI through its SDK.

Kubeflow submissions go to a local HTTP server (127.0.0.1, a free port) that records every
request and answers as the Kubeflow Pipelines v2beta1 REST API does (bodies and status codes of
its API spec: `V2beta1Experiment`, `V2beta1Run`, errors as `googlerpcStatus`). Vertex AI
submissions are checked without network: the dry run's request is compared with what the SDK
hands its PipelineService client.
"""

import contextlib
import io
import json
import pathlib
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines import cli, submit

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden"
KUBEFLOW_FILE = str(GOLDEN_DIR / "digits_cnn_kubeflow.json")  # a compiled PipelineSpec
VERTEX_FILE = str(GOLDEN_DIR / "digits_cnn_vertex.json")  # a compiled PipelineJob
NOW = "2026-12-02T08:00:00Z"
PARAMETER_TYPES = {
    "steps": "NUMBER_INTEGER",
    "rate": "NUMBER_DOUBLE",
    "family": "STRING",
    "tune": "BOOLEAN",
}


def _toy_spec() -> dict:
    """A valid PipelineSpec with one parameter of each type and no tasks."""
    return {
        "pipelineInfo": {"name": "toy"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "tfx-1.16.0",
        "defaultPipelineRoot": "gs://bucket/root",
        "deploymentSpec": {"executors": {}},
        "root": {
            "dag": {"tasks": {}},
            "inputDefinitions": {
                "parameters": {
                    name: {"parameterType": kind} for name, kind in PARAMETER_TYPES.items()
                }
            },
        },
    }


class FakeKubeflow:
    """The Kubeflow Pipelines v2beta1 endpoints kfp.Client calls to submit a run."""

    def __init__(self, token: str | None = None):
        self.token = token
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}

    def handle(self, method: str, url: str, headers, body: bytes) -> tuple[int, dict]:
        parsed = urllib.parse.urlparse(url)
        document = json.loads(body) if body else None
        self.requests.append(
            {
                "method": method,
                "path": parsed.path,
                "query": urllib.parse.parse_qs(parsed.query),
                "authorization": headers.get("Authorization"),
                "body": document,
            }
        )
        route = (method, parsed.path)
        # Health is public here; kfp.Client retries a refused health check for 25 s.
        authorized = headers.get("Authorization") == f"Bearer {self.token}"
        if self.token is not None and route[1] != "/apis/v2beta1/healthz" and not authorized:
            return 401, {"code": 16, "message": "Unauthenticated: missing or invalid token"}
        if route == ("GET", "/apis/v2beta1/healthz"):
            return 200, {"multi_user": False}
        if route == ("GET", "/apis/v2beta1/experiments"):
            query = json.loads(urllib.parse.parse_qs(parsed.query)["filter"][0])
            predicate = query["predicates"][0]  # protobuf JSON: either spelling is accepted
            name = predicate.get("string_value", predicate.get("stringValue"))
            found = [item for item in self.experiments.values() if item["display_name"] == name]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if route == ("POST", "/apis/v2beta1/experiments"):
            return 200, self.add_experiment(document["display_name"])
        if route == ("POST", "/apis/v2beta1/runs"):
            return self.create_run(document)
        return 404, {"code": 5, "message": f"Not Found: {method} {parsed.path}"}

    def add_experiment(self, name: str) -> dict:
        experiment = {
            "experiment_id": f"exp-{len(self.experiments) + 1}",
            "display_name": name,
            "created_at": NOW,
            "namespace": "",
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def create_run(self, run: dict) -> tuple[int, dict]:
        if not run.get("display_name"):
            return 400, {"code": 3, "message": "Invalid input error: run name is empty"}
        version = run.get("pipeline_spec", {}).get("schemaVersion")
        if version != "2.1.0":
            return 400, {
                "code": 3,
                "message": f"Invalid input error: unsupported pipeline schema version {version}",
            }
        if run.get("experiment_id") not in self.experiments:
            return 404, {"code": 5, "message": f"Experiment {run.get('experiment_id')} not found"}
        created = {
            **run,
            "run_id": f"run-{len(self.runs) + 1}",
            "storage_state": "AVAILABLE",
            "created_at": NOW,
            "scheduled_at": NOW,
            "finished_at": "1970-01-01T00:00:00Z",
            "state": "PENDING",
        }
        self.runs[created["run_id"]] = created
        return 200, created


@pytest.fixture
def kubeflow():
    """A FakeKubeflow served on 127.0.0.1 at a free port; `.url` is its address."""
    fake = FakeKubeflow()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            status, body = fake.handle(
                self.command, self.path, self.headers, self.rfile.read(length)
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["submit", *args])
    return code, out.getvalue(), err.getvalue()


def _dry_run_body(output: str) -> dict:
    """The JSON body that follows the `POST .../runs` line of a dry run."""
    return json.loads(output.split("/runs\n", 1)[1])


def _write(tmp_path, document: dict, name: str = "pipeline.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_submit_sends_exactly_the_dry_run_request_with_the_token(kubeflow, tmp_path, monkeypatch):
    monkeypatch.setenv(submit.TOKEN_ENV, "secret-token")
    kubeflow.token = "secret-token"
    path = _write(tmp_path, _toy_spec())
    args = ["--host", kubeflow.url, "--experiment", "nightly", "--run-name", "toy-1"]
    params = ["--param", "steps=5", "--param", "rate=0.5", "--param", "tune=false"]

    dry_code, dry_out, _ = _cli(path, *args, *params, "--dry-run")
    assert dry_code == 0 and kubeflow.requests == []  # a dry run sends nothing
    assert "secret-token" not in dry_out
    code, out, err = _cli(path, *args, *params)

    assert (code, err) == (0, "")
    assert [(item["method"], item["path"]) for item in kubeflow.requests] == [
        ("GET", "/apis/v2beta1/healthz"),
        ("GET", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/experiments"),
        ("POST", "/apis/v2beta1/runs"),
    ]
    assert {item["authorization"] for item in kubeflow.requests} == {"Bearer secret-token"}
    assert kubeflow.requests[2]["body"] == {"display_name": "nightly", "namespace": ""}
    sent = kubeflow.requests[3]["body"]
    assert sent["experiment_id"] == "exp-1"
    assert {**_dry_run_body(dry_out), "experiment_id": "exp-1"} == sent
    assert sent["runtime_config"] == {"parameters": {"steps": 5, "rate": 0.5, "tune": False}}
    assert "submitted run toy-1 (run-1, state PENDING) to experiment 'nightly'" in out


def test_the_compiled_digits_spec_is_sent_as_compiled_into_an_existing_experiment(kubeflow):
    kubeflow.add_experiment("Default")

    code, _, err = _cli(KUBEFLOW_FILE, "--host", kubeflow.url, "--run-name", "digits-1")

    assert (code, err) == (0, "")
    assert [item["method"] for item in kubeflow.requests] == ["GET", "GET", "POST"]
    sent = kubeflow.requests[-1]["body"]
    assert sent["experiment_id"] == "exp-1"
    assert sent["pipeline_spec"] == json.loads(pathlib.Path(KUBEFLOW_FILE).read_text())
    assert sent["display_name"] == "digits-1"
    assert kubeflow.runs["run-1"]["state"] == "PENDING"


def test_a_refused_run_is_one_line_with_the_status_and_the_server_message(kubeflow, tmp_path):
    spec = {**_toy_spec(), "schemaVersion": "2.0.0"}

    code, _, err = _cli(_write(tmp_path, spec), "--host", kubeflow.url)

    assert code == 2
    assert err.strip() == (
        f"dlforge: error: Kubeflow Pipelines at {kubeflow.url} refused the request: HTTP 400 "
        "Bad Request: Invalid input error: unsupported pipeline schema version 2.0.0"
    )


def test_without_the_token_the_server_answers_401_and_submit_says_so(kubeflow):
    kubeflow.token = "needed"

    code, _, err = _cli(KUBEFLOW_FILE, "--host", kubeflow.url)

    assert code == 2
    assert "HTTP 401" in err and "Unauthenticated" in err
    assert kubeflow.runs == {}


def test_the_default_run_name_is_the_pipeline_name_and_utc_time():
    import datetime

    now = datetime.datetime(2026, 12, 2, 8, 15, 0, tzinfo=datetime.timezone.utc)

    assert submit.default_run_name(_toy_spec(), now) == "toy-20261202-081500"
    assert submit.default_run_name({"pipelineSpec": _toy_spec()}, now) == "toy-20261202-081500"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "steps=five"], "Expected parameter 'steps' to be a NUMBER_INTEGER"),
        (["--param", "tune=maybe"], "Expected parameter 'tune' to be a BOOLEAN"),
        (["--param", "epochs=3"], r"parameters among \['family', 'rate', 'steps', 'tune'\]"),
        (["--param", "steps"], "Expected --param NAME=VALUE, received 'steps'"),
        (["--param", "steps=1", "--param", "steps=2"], "received 'steps' twice"),
        (["--project", "p"], "--project and --region with --vertex only"),
    ],
)
def test_bad_kubeflow_arguments_exit_2_before_anything_is_sent(kubeflow, tmp_path, args, message):
    code, _, err = _cli(_write(tmp_path, _toy_spec()), "--host", kubeflow.url, *args)

    assert code == 2
    assert err.startswith("dlforge: error: ")
    assert re.search(message, err)
    assert kubeflow.requests == []


def test_a_vertex_file_sent_to_kubeflow_is_refused_naming_the_right_target(kubeflow):
    code, _, err = _cli(VERTEX_FILE, "--host", kubeflow.url)

    assert code == 2
    assert "Expected a Kubeflow PipelineSpec (dlforge compile --target kubeflow)" in err
    assert kubeflow.requests == []


def test_a_missing_file_and_a_host_without_scheme_are_clear_errors(tmp_path):
    code, _, err = _cli(str(tmp_path / "none.json"), "--host", "http://127.0.0.1:1")
    assert code == 2 and "Cannot read the compiled pipeline" in err

    code, _, err = _cli(KUBEFLOW_FILE, "--host", "127.0.0.1:8888")
    assert code == 2 and "Expected --host to be an http(s):// URL" in err


def test_vertex_dry_run_prints_the_create_pipeline_job_request(tmp_path):
    code, out, err = _cli(
        VERTEX_FILE,
        "--vertex",
        "--project",
        "my-project",
        "--region",
        "europe-west4",
        "--run-name",
        "digits-cnn-1",
        "--service-account",
        "runner@my-project.iam.gserviceaccount.com",
        "--dry-run",
    )

    assert (code, err) == (0, "")
    header, body = out.split("\n", 1)
    assert "europe-west4-aiplatform.googleapis.com" in header
    request = json.loads(body)
    compiled = json.loads(pathlib.Path(VERTEX_FILE).read_text())
    assert request["parent"] == "projects/my-project/locations/europe-west4"
    assert request["pipelineJobId"] == "digits-cnn-1"
    job = request["pipelineJob"]
    assert job["displayName"] == "digits-cnn-1"
    assert job["serviceAccount"] == "runner@my-project.iam.gserviceaccount.com"
    assert job["pipelineSpec"] == compiled["pipelineSpec"]
    assert (
        job["runtimeConfig"]["gcsOutputDirectory"]
        == (compiled["runtimeConfig"]["gcsOutputDirectory"])
    )


def test_vertex_submit_hands_the_sdk_client_the_dry_run_request(tmp_path, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform.utils import gcs_utils
    from google.protobuf import json_format

    job_file = _write(tmp_path, {"pipelineSpec": _toy_spec(), "runtimeConfig": {}}, "job.json")
    submission = submit.vertex_submission(
        job_file,
        project="my-project",
        region="us-central1",
        run_name="toy-2",
        parameters={"steps": "7", "family": "mlp"},
        credentials=AnonymousCredentials(),
    )
    sent = {}

    def create_pipeline_job(parent, pipeline_job, pipeline_job_id, timeout=None):
        sent.update(
            parent=parent,
            pipelineJobId=pipeline_job_id,
            pipelineJob=json_format.MessageToDict(pipeline_job._pb),
        )
        pipeline_job.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
        return pipeline_job

    # No network: the client call is recorded, and the SDK's bucket check is skipped.
    monkeypatch.setattr(submission.job.api_client, "create_pipeline_job", create_pipeline_job)
    monkeypatch.setattr(
        gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist", print
    )

    name = submit.submit_to_vertex(submission)

    assert name == "projects/my-project/locations/us-central1/pipelineJobs/toy-2"
    expected = json.loads(submit.describe_vertex(submission).split("\n", 1)[1])
    assert sent == expected
    assert sent["pipelineJob"]["runtimeConfig"]["parameterValues"] == {
        "steps": 7,
        "family": "mlp",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "p"], "Expected --project and --region with --vertex"),
        (["--project", "p", "--region", "r", "--run-name", "Run_1"], "a Vertex AI job id"),
        (["--project", "p", "--region", "r", "--experiment", "e"], "--experiment with --host"),
    ],
)
def test_bad_vertex_arguments_exit_2(args, message):
    code, _, err = _cli(VERTEX_FILE, "--vertex", "--dry-run", *args)

    assert code == 2
    assert message in err


def test_vertex_refuses_a_pipeline_root_off_cloud_storage(tmp_path):
    spec = {**_toy_spec(), "defaultPipelineRoot": "s3://bucket/root"}

    code, _, err = _cli(
        _write(tmp_path, spec), "--vertex", "--project", "p", "--region", "r", "--dry-run"
    )

    assert code == 2
    assert "Expected the pipeline root on Cloud Storage (gs://)" in err


def test_vertex_without_credentials_in_the_environment_is_one_line(monkeypatch, tmp_path):
    import google.auth
    from google.auth import exceptions

    def no_credentials(*args, **kwargs):
        raise exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)

    code, _, err = _cli(VERTEX_FILE, "--vertex", "--project", "p", "--region", "r")

    assert code == 2
    assert err.startswith("dlforge: error: Expected Google application default credentials")
    assert "credentials were not found" in err
