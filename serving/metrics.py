"""Prometheus metrics of the server, served at `/monitoring/prometheus/metrics`.

Names follow TF Serving's (`:tensorflow:serving:request_count`, `...:request_latency`,
`...:batching_session:processed_batch_size`), each with a `version` label added, so that two
versions behind an A/B split can be compared. Counters and histograms are kept here (not with
prometheus_client) because TF Serving's names carry colons and no `_total` suffix.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

CONTENT_TYPE = "text/plain; version=0.0.4"
LATENCY_BUCKETS_MICROS = (
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    25000,
    50000,
    100000,
    250000,
    1000000,
    5000000,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
BATCH_SIZE = ":tensorflow:serving:batching_session:processed_batch_size"
MODEL_STATE = ":tensorflow:serving:model_version_state"


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    escaped = (
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in pairs
    )
    return "{" + ",".join(escaped) + "}"


class _Histogram:
    def __init__(self, buckets: tuple[int, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value


class Metrics:
    """Thread-safe request, latency, batch-size and version-state metrics."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = defaultdict(int)
        self._latencies: dict[tuple, _Histogram] = {}
        self._batch_sizes: dict[tuple, _Histogram] = {}
        self._states: dict[tuple, int] = {}

    def record_request(
        self,
        model_name: str,
        version: int | None,
        api: str,
        entrypoint: str,
        status_name: str,
        micros: float,
    ) -> None:
        """Counts a request; a successful one's latency goes into the histogram (as in TF)."""
        shown = "" if version is None else str(version)
        with self._lock:
            self._counts[
                (
                    ("model_name", model_name),
                    ("version", shown),
                    ("API", api),
                    ("entrypoint", entrypoint),
                    ("status", status_name),
                )
            ] += 1
            if status_name == "OK":
                key = (
                    ("model_name", model_name),
                    ("version", shown),
                    ("API", api),
                    ("entrypoint", entrypoint),
                )
                histogram = self._latencies.get(key)
                if histogram is None:
                    histogram = self._latencies[key] = _Histogram(LATENCY_BUCKETS_MICROS)
                histogram.observe(micros)

    def record_batch(self, model_name: str, version: int, rows: int) -> None:
        key = (("model_name", model_name), ("version", str(version)))
        with self._lock:
            self._batch_sizes.setdefault(key, _Histogram(BATCH_SIZE_BUCKETS)).observe(rows)

    def record_state(self, model_name: str, version: int, state: str) -> None:
        with self._lock:
            for known in [
                key
                for key in self._states
                if key[:2] == (("model_name", model_name), ("version", str(version)))
            ]:
                del self._states[known]
            self._states[
                (("model_name", model_name), ("version", str(version)), ("state", state))
            ] = 1

    def render(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        lines = []
        with self._lock:
            lines.append(f"# TYPE {REQUEST_COUNT} counter")
            lines.extend(
                f"{REQUEST_COUNT}{_labels(k)} {v}" for k, v in sorted(self._counts.items())
            )
            for name, histograms in (
                (REQUEST_LATENCY, self._latencies),
                (BATCH_SIZE, self._batch_sizes),
            ):
                lines.append(f"# TYPE {name} histogram")
                for key, histogram in sorted(histograms.items()):
                    cumulative = 0
                    for bound, count in zip(
                        (*histogram.buckets, "+Inf"), histogram.counts, strict=True
                    ):
                        cumulative += count
                        lines.append(
                            f"{name}_bucket{_labels((*key, ('le', str(bound))))} {cumulative}"
                        )
                    lines.append(f"{name}_sum{_labels(key)} {histogram.total:g}")
                    lines.append(f"{name}_count{_labels(key)} {cumulative}")
            lines.append(f"# TYPE {MODEL_STATE} gauge")
            lines.extend(f"{MODEL_STATE}{_labels(k)} {v}" for k, v in sorted(self._states.items()))
        return "\n".join(lines) + "\n"
