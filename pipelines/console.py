"""What a person sees in the terminal while a pipeline runs."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator


def configure_logs(verbose: bool) -> None:
    """Shows library logs only when verbose; stage progress comes from INFO records either way.

    The root logger stays at INFO because TFX's progress records ("Component X is running.")
    come from the absl logger, whose level falls back to the root's once absl flags are parsed.
    """
    logging.basicConfig(level=logging.INFO, force=True)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore")
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.ERROR)


@contextlib.contextmanager
def progress_only(verbose: bool) -> Iterator[Callable[[str], None]]:
    """Hides what libraries print to stdout (KerasTuner's search summaries) unless verbose.

    Yields:
        A function that prints a progress line to the real stdout.
    """
    stream = sys.stdout

    def progress(line: str) -> None:
        print(line, file=stream, flush=True)

    if verbose:
        yield progress
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield progress
