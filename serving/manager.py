"""The served versions of every model: found by polling base paths, loaded, swapped, unloaded.

A new version is loaded and warmed up beside the ones serving, and only then published; the
versions the policy no longer wants are unpublished after that. A version that fails to load is
recorded (its status says why) and never replaces a serving one. Requests read an immutable
snapshot (name -> version -> Servable), replaced whole under a lock, so a request that started
on a version finishes on it while the next one already sees the new snapshot.

Model names and versions from requests are looked up in the snapshot, never joined into paths;
version folders come only from listing the configured base paths, and a folder that resolves
outside its base path (a symlink) is refused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc
from tensorflow_serving.apis import get_model_status_pb2

from serving import inference, status, warmup
from serving.config import ModelConfig
from serving.servable import Servable

_LOG = logging.getLogger("dlforge.serving")
State = get_model_status_pb2.ModelVersionStatus.State
Loader = Callable[[str, int, str], Servable]


@dataclass(frozen=True)
class VersionState:
    """A version's state as GetModelStatus reports it."""

    state: int
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


def version_folders(base_path: str) -> dict[int, str]:
    """Numeric version -> folder, for the folders directly under `base_path` that stay in it.

    Names that are not non-negative integers (e.g. the Pusher's hidden staging folders) are
    not versions, as in TF Serving.
    """
    try:
        names = os.listdir(base_path)
    except OSError:
        return {}
    root = os.path.realpath(base_path)
    folders: dict[int, str] = {}
    for name in names:
        if not name.isdigit():
            continue
        folder = os.path.join(base_path, name)
        resolved = os.path.realpath(folder)
        if os.path.dirname(resolved) != root or not os.path.isdir(resolved):
            _LOG.warning("Refusing version folder %s: it resolves to %s", folder, resolved)
            continue
        folders.setdefault(int(name), folder)
    return folders


class ModelManager:
    """Loads the versions each model's policy wants and answers lookups by ModelSpec.

    Args:
        models: The served models.
        runner: How warmup requests call the model.
        loader: Builds a Servable from (name, version, folder); `Servable` by default.
        on_change: Called with (model name, version, state name) after every state change.
    """

    def __init__(
        self,
        models: tuple[ModelConfig, ...],
        runner: inference.Runner = inference.direct_runner,
        loader: Loader = Servable,
        on_change: Callable[[str, int, str], None] | None = None,
    ):
        self._configs = {model.name: model for model in models}
        self._runner = runner
        self._loader = loader
        self._on_change = on_change
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._available: Mapping[str, Mapping[int, Servable]] = {name: {} for name in self._configs}
        self._states: dict[str, dict[int, VersionState]] = {name: {} for name in self._configs}
        self._failed: dict[str, set[tuple[int, str]]] = {name: set() for name in self._configs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def model_names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> ModelConfig | None:
        return self._configs.get(name)

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        with self._lock:
            self._states[name][version] = state
        if self._on_change is not None:
            self._on_change(name, version, State.Name(state.state))

    def _publish(self, name: str, versions: Mapping[int, Servable]) -> None:
        with self._lock:
            snapshot = dict(self._available)
            snapshot[name] = dict(versions)
            self._available = snapshot

    def poll_once(self) -> None:
        """Brings every model's loaded versions in line with its base path and policy."""
        with self._poll_lock:
            for name, model in self._configs.items():
                self._sync_model(name, model)

    def _sync_model(self, name: str, model: ModelConfig) -> None:
        on_disk = version_folders(model.base_path)
        if not on_disk and not self._available[name]:
            _LOG.debug("No versions of %s found under %s", name, model.base_path)
        while True:
            failed = {v for v, folder in self._failed[name] if on_disk.get(v) == folder}
            wanted = model.policy.choose([v for v in on_disk if v not in failed])
            loaded = self._available[name]
            missing = sorted(wanted - set(loaded))
            if not missing:
                break
            version = missing[-1]  # The newest first: it is the one `latest` requests get.
            servable = self._load(name, version, on_disk[version])
            if servable is None:
                self._failed[name].add((version, on_disk[version]))
                continue
            self._publish(name, {**loaded, version: servable})
            self._set_state(name, version, VersionState(State.AVAILABLE))
        for version in sorted(set(self._available[name]) - wanted):
            self._set_state(name, version, VersionState(State.UNLOADING))
            remaining = {v: s for v, s in self._available[name].items() if v != version}
            self._publish(name, remaining)
            self._set_state(name, version, VersionState(State.END))
            _LOG.info("Unloaded %s version %d", name, version)

    def _load(self, name: str, version: int, folder: str) -> Servable | None:
        self._set_state(name, version, VersionState(State.LOADING))
        try:
            servable = self._loader(name, version, folder)
            replayed = warmup.replay(servable, self._runner)
        except Exception as error:  # Any load failure keeps the old version.
            failure = inference.error_from_exception(error)
            _LOG.error("Failed to load %s version %d from %s: %s", name, version, folder, error)
            self._set_state(name, version, VersionState(State.END, failure.code, failure.message))
            return None
        _LOG.info("Loaded %s version %d (%d warmup requests)", name, version, replayed)
        return servable

    def start_polling(self, interval_seconds: float) -> None:
        """Polls once now, then every `interval_seconds` in a thread (0: once; < 0: never)."""
        if interval_seconds < 0:
            return
        self.poll_once()
        if interval_seconds == 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                try:
                    self.poll_once()
                except Exception:  # A bad poll must not stop later ones.
                    _LOG.exception("Polling the model base paths failed")

        self._thread = threading.Thread(target=loop, name="dlforge-serving-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops polling and waits for a poll in progress to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def get(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a ModelSpec, with ServerCore's errors.

        Raises:
            ServingError: INVALID_ARGUMENT for an empty name or an unknown label, NOT_FOUND when
                no such version is available.
        """
        if not name:
            raise status.invalid_argument("ModelSpec has no name specified.")
        if label is not None:
            model = self._configs.get(name)
            if model is None or label not in model.labels:
                raise status.invalid_argument(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        versions = self._available.get(name) or {}
        if version is not None:
            servable = versions.get(version)
            if servable is None:
                raise status.not_found(
                    f"Servable not found for request: Specific({name}, {version})"
                )
            return servable
        if not versions:
            raise status.not_found(f"Servable not found for request: Latest({name})")
        return versions[max(versions)]

    def version_states(self, name: str) -> dict[int, VersionState]:
        """Every version of `name` seen so far and its state (empty for an unknown model)."""
        with self._lock:
            return dict(self._states.get(name, {}))
