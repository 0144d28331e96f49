"""A compiled pipeline step's entry point on an `s3://` root: `python -m pipelines.kfp_step MODULE
[ARG ...]` runs MODULE (TFX's executor or driver entry point) as the main program, then ends the
process with MODULE's exit status without running C++ static destructors.

tensorflow-io 0.37.1, which gives TensorFlow its `s3://` file system, aborts every process that
used it when the process exits (exit code 134, "pure virtual method called": the AWS SDK's
metadata client is destroyed after its logger; tensorflow/io issue 2039, fixed upstream in no
release). The step has written its outputs by then, but Kubeflow would mark it failed. Python's
own exit handlers (logging, temporary files) still run; only the C++ destructors are skipped.

Deliberately light: it imports nothing of dlforge, TensorFlow or TFX itself.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import traceback

USAGE = "python -m pipelines.kfp_step MODULE [ARG ...]"


def run(argv: list[str]) -> int:
    """Runs `argv[0]` as `python -m argv[0] argv[1:]` would and returns its exit status.

    Returns:
        0 when the module returns or exits with None/0, its integer exit code, 1 for any other
        exit value or an uncaught exception (whose traceback goes to stderr), 2 without a module.
    """
    if not argv:
        print(f"Expected a module to run: {USAGE}, received no arguments.", file=sys.stderr)
        return 2
    sys.argv = list(argv)
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    except BaseException:  # reported as at Python's own top level, then exit 1
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    """Runs the module, Python's exit handlers, then ends the process with the module's status."""
    status = run(sys.argv[1:])
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
