"""What `dlforge serve` serves and how: typed options read from tensorflow_model_server's flags.

The model config file is TF Serving's text-format `ModelServerConfig` (several models, each with
a base path, a version policy and version labels); the batching parameters file is TF Serving's
text-format `BatchingParameters`. Both are checked in full when the server starts, with errors
naming the file, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
LATEST, ALL, SPECIFIC = "latest", "all", "specific"


class ConfigError(ValueError):
    """A server option or config file that cannot be served as written."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which numeric versions under a base path are served (TF Serving's ServableVersionPolicy).

    Attributes:
        kind: `latest` (the `num_versions` largest), `all`, or `specific` (`versions` only).
        num_versions: How many of the largest versions `latest` serves.
        versions: The versions `specific` serves.
    """

    kind: str = LATEST
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, on_disk: list[int]) -> set[int]:
        """The versions to serve among those found on disk."""
        ordered = sorted(on_disk)
        if self.kind == ALL:
            return set(ordered)
        if self.kind == SPECIFIC:
            return set(ordered) & set(self.versions)
        return set(ordered[-self.num_versions :])


@dataclass(frozen=True)
class ModelConfig:
    """One served model.

    Attributes:
        name: The name clients use in URLs and ModelSpecs.
        base_path: Absolute folder holding the numeric version folders.
        policy: Which versions are served.
        labels: Version label (e.g. `stable`) -> version.
        traffic: An A/B split of the requests that name no version or label: (label or
            version number, weight) pairs; empty to serve them the latest version.
    """

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: Mapping[str, int] = field(default_factory=dict)
    traffic: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class BatchingParameters:
    """Server-side batching, with TF Serving's defaults.

    Attributes:
        max_batch_size: Most examples (rows) one merged model call takes; a larger request fails.
        batch_timeout_micros: How long a batch that is not full waits for more requests.
        num_batch_threads: Merged calls run at once.
        max_enqueued_batches: Batches that may wait; beyond it requests fail with UNAVAILABLE.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_enqueued_batches: int = 10

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Expected {name} >= 1, received {getattr(self, name)}.")
        if self.batch_timeout_micros < 0:
            raise ConfigError(
                f"Expected batch_timeout_micros >= 0, received {self.batch_timeout_micros}."
            )


@dataclass(frozen=True)
class ServerOptions:
    """Everything the server needs, from the command line.

    Attributes:
        models: The served models.
        host: Interface both APIs bind; loopback unless told otherwise.
        grpc_port: gRPC port; 0 picks a free one.
        rest_api_port: REST port; 0 picks a free one, None turns REST off.
        poll_wait_seconds: Seconds between polls of the base paths; 0 polls once at start,
            negative never polls (TF Serving's `--file_system_poll_wait_seconds`).
        batching: Batching parameters, or None to call the model once per request.
        rest_api_timeout_ms: Deadline of a REST request's model call; 0 or less for none.
        rest_api_num_threads: Threads for the blocking work of REST requests (model calls
            without batching, Classify and Regress); 0 for 4 per CPU, as TF Serving's default.
        max_body_bytes: Largest REST body or gRPC message accepted.
        traffic_seed: Seed of the A/B draws, for reproducible splits; None for a random one.
        request_log_dir: Where sampled requests are logged (`<home>/logs`); None for no log.
        request_log_sampling_rate: Fraction of predict requests logged.
    """

    models: tuple[ModelConfig, ...]
    host: str = DEFAULT_HOST
    grpc_port: int = 8500
    rest_api_port: int | None = None
    poll_wait_seconds: float = 1.0
    batching: BatchingParameters | None = None
    rest_api_timeout_ms: int = 30000
    rest_api_num_threads: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    traffic_seed: int | None = None
    request_log_dir: str | None = None
    request_log_sampling_rate: float = 0.1

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("Expected at least one model to serve, received none.")
        names = [model.name for model in self.models]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ConfigError(f"Expected unique model names, received {duplicated} twice.")
        if not 0 < self.request_log_sampling_rate <= 1:
            raise ConfigError(
                "Expected a request log sampling rate in (0, 1], received "
                f"{self.request_log_sampling_rate}."
            )
        if self.max_body_bytes < 1:
            raise ConfigError(f"Expected max_body_bytes >= 1, received {self.max_body_bytes}.")
        if self.rest_api_num_threads < 0:
            raise ConfigError(
                "Expected --rest_api_num_threads >= 0 (0: 4 per CPU), received "
                f"{self.rest_api_num_threads}."
            )


def _check_name(name: str, source: str) -> str:
    # The REST URL grammar cannot address a name holding '/' or ':'.
    if not name or "/" in name or ":" in name:
        raise ConfigError(f"{source}: expected a model name without '/' or ':', received {name!r}.")
    return name


def single_model(name: str, base_path: str) -> ModelConfig:
    """The model of `--model_name` and `--model_base_path` (latest version, no labels)."""
    if not base_path:
        raise ConfigError("--model_base_path: expected a folder, received nothing.")
    return ModelConfig(name=_check_name(name, "--model_name"), base_path=os.path.abspath(base_path))


def parse_model_config(text: str, source: str = "<model config>") -> tuple[ModelConfig, ...]:
    """Reads TF Serving's text-format ModelServerConfig.

    Args:
        text: The file's content.
        source: The file name, for error messages.

    Returns:
        The models in file order.

    Raises:
        ConfigError: If the text does not parse, holds no `model_config_list`, or a model has
            no name or base path, a platform other than `tensorflow`, or a bad version policy.
    """
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(
            f"{source}: expected a text-format ModelServerConfig, it does not parse: {error}"
        ) from None
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{source}: expected a model_config_list, found none.")
    models = []
    for index, entry in enumerate(config.model_config_list.config):
        where = f"{source}: config {index}"
        name = _check_name(entry.name, f"{where} name")
        if not entry.base_path:
            raise ConfigError(f"{where} ({name!r}): expected a base_path, found none.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"{where} ({name!r}): expected model_platform 'tensorflow', received "
                f"{entry.model_platform!r}."
            )
        models.append(
            ModelConfig(
                name=name,
                base_path=os.path.abspath(entry.base_path),
                policy=_policy(entry.model_version_policy, f"{where} ({name!r})"),
                labels=dict(entry.version_labels),
            )
        )
    if not models:
        raise ConfigError(f"{source}: expected at least one config in model_config_list.")
    return tuple(models)


def _policy(policy, where: str) -> VersionPolicy:
    kind = policy.WhichOneof("policy_choice")
    if kind == ALL:
        return VersionPolicy(kind=ALL)
    if kind == SPECIFIC:
        if not policy.specific.versions:
            raise ConfigError(f"{where}: expected versions in the specific policy, found none.")
        return VersionPolicy(kind=SPECIFIC, versions=tuple(policy.specific.versions))
    num_versions = policy.latest.num_versions if kind == LATEST else 1
    if num_versions < 1:
        # TF Serving treats 0 as its default of 1.
        num_versions = 1
    return VersionPolicy(kind=LATEST, num_versions=num_versions)


_BATCHING_FIELDS = {
    "max_batch_size",
    "batch_timeout_micros",
    "num_batch_threads",
    "max_enqueued_batches",
}
# Fields of TF Serving's BatchingParameters this server does not implement: refused, not ignored.
_UNSUPPORTED_BATCHING_FIELDS = {
    "thread_pool_name",
    "allowed_batch_sizes",
    "pad_variable_length_inputs",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
    "enable_lazy_split",
    "batch_padding_policy",
}
_BATCHING_ENTRY = re.compile(
    r"\s*(?P<name>[A-Za-z_]+)\s*(?::\s*(?P<plain>[^\s{}#]+)|\{\s*value\s*:\s*(?P<wrapped>[^\s{}#]+)\s*\})"
)


def parse_batching_parameters(text: str, source: str = "<batching parameters>"):
    """Reads TF Serving's text-format BatchingParameters (`max_batch_size { value: 32 }`).

    Raises:
        ConfigError: On a field this server does not know or implement, or a non-integer value.
    """
    values: dict[str, int] = {}
    remaining = re.sub(r"#[^\n]*", "", text)
    position = 0
    while remaining[position:].strip():
        match = _BATCHING_ENTRY.match(remaining, position)
        if match is None:
            snippet = remaining[position:].strip().splitlines()[0][:60]
            raise ConfigError(
                f"{source}: expected entries like 'max_batch_size {{ value: 32 }}', found "
                f"{snippet!r}."
            )
        name = match["name"]
        if name in _UNSUPPORTED_BATCHING_FIELDS:
            raise ConfigError(f"{source}: {name!r} is not supported by dlforge serve.")
        if name not in _BATCHING_FIELDS:
            raise ConfigError(
                f"{source}: expected a field in {sorted(_BATCHING_FIELDS)}, received {name!r}."
            )
        raw = match["plain"] or match["wrapped"]
        try:
            values[name] = int(raw)
        except ValueError:
            raise ConfigError(f"{source}: {name}: expected an integer, received {raw!r}.") from None
        position = match.end()
    return BatchingParameters(**values)


def parse_traffic_split(
    text: str, models: tuple[ModelConfig, ...], source: str = "<traffic split>"
) -> tuple[ModelConfig, ...]:
    """Adds A/B splits from a TOML file: a table per model, target -> weight.

    For example `[digits]` then `stable = 90` and `canary = 10`: 90% of the requests for
    `digits` that name no version or label go to the version labelled `stable`. A target is
    a version label of the model or a version number.

    Raises:
        ConfigError: On TOML that does not parse, an unknown model or label, or a weight that
            is not a positive number.
    """
    import tomli

    try:
        document = tomli.loads(text)
    except tomli.TOMLDecodeError as error:
        raise ConfigError(f"{source}: expected TOML, it does not parse: {error}") from None
    by_name = {model.name: model for model in models}
    unknown = sorted(set(document) - set(by_name))
    if unknown:
        raise ConfigError(
            f"{source}: expected tables for served models {sorted(by_name)}, received {unknown}."
        )
    updated = dict(by_name)
    for name, split in document.items():
        if not isinstance(split, dict) or not split:
            raise ConfigError(f"{source}: [{name}]: expected target = weight entries.")
        model = by_name[name]
        traffic = []
        for target, weight in split.items():
            if not target.isdigit() and target not in model.labels:
                raise ConfigError(
                    f"{source}: [{name}]: expected a version number or one of the labels "
                    f"{sorted(model.labels)}, received {target!r}."
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise ConfigError(
                    f"{source}: [{name}] {target}: expected a positive weight, received {weight!r}."
                )
            traffic.append((target, float(weight)))
        updated[name] = dataclasses.replace(model, traffic=tuple(traffic))
    return tuple(updated[model.name] for model in models)


def read_text(path: str, flag: str) -> str:
    """The content of a config file named by a flag, or a ConfigError naming both."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{flag}: cannot read {path}: {error}") from None
