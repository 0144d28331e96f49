"""Finds the drift baseline: the latest statistics that passed every data gate."""

from __future__ import annotations

from tfx.dsl.components.common import resolver


class LatestBaselineStrategy(resolver.ResolverStrategy):
    """The latest artifact of each channel, or none before the first exists.

    TFX's LatestArtifactStrategy fails its resolver node when a channel is empty, which marks a
    home's first run failed in ML Metadata; this one resolves to an empty list, and the
    DriftGate then does not measure drift. The Kubeflow v2 compiler accepts only TFX's own
    strategies, so a compiled pipeline uses LatestArtifactStrategy.
    """

    def resolve_artifacts(self, store, input_dict):
        del store  # The artifacts of the channels are all it needs.
        return {
            key: sorted(artifacts, key=lambda artifact: artifact.id)[-1:]
            for key, artifacts in input_dict.items()
        }
