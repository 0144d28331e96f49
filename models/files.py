"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_text_atomically(path: str, text: str) -> None:
    """Writes `text` to a temporary file beside `path`, then renames it over `path`.

    Raises:
        FileNotFoundError: If the folder of `path` does not exist.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}-", suffix=".tmp", dir=folder
    )
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; these files are not.
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json_atomically(path: str, document: Any) -> None:
    """Writes `document` as indented JSON, atomically (see `write_text_atomically`).

    Raises:
        FileNotFoundError: If the folder of `path` does not exist.
    """
    write_text_atomically(path, json.dumps(document, indent=1, sort_keys=True) + "\n")
