"""File-system helpers for tests (no TensorFlow)."""

import os


def snapshot(folder) -> dict[str, bytes]:
    """Every file under `folder`, relative path -> content."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, folder)] = handle.read()
    return files
