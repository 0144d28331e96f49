"""Custom TFX components: `component.py` declares the interface, `executor.py` does the work."""

# The Kubeflow v2 entrypoint finds a custom artifact class by its type name, read as an import
# path that must look like `<namespace>.<Class>` (KFP schema titles allow one dot): the
# artifact types are named `components.<Class>` and resolved here. Imported on first use, so
# that importing this package does not import TFX.
_ARTIFACT_TYPES = ("ValidationReport", "BaselineStatistics", "TFLiteModel", "DeviceBlessing")


def __getattr__(name: str):
    if name in _ARTIFACT_TYPES:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
