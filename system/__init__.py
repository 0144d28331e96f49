"""KFP's `system.*` artifact types, by the import path their type names spell.

The Kubeflow v2 entrypoint imports an artifact class by its type name read as `<module>.<Class>`;
KFP's console renders only the types named `system.Metrics`, `system.HTML` and
`system.Markdown`. dlforge defines them in `components.artifacts`; this package resolves those
names to them (on first use, so that importing it does not import TFX).
"""

_ARTIFACT_TYPES = ("Metrics", "HTML", "Markdown")


def __getattr__(name: str):
    if name in _ARTIFACT_TYPES:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'system' has no attribute {name!r}")
