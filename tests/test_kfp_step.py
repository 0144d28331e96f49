"""`pipelines.kfp_step`: a compiled step's module run as the main program, its exit status kept,
and a process that used s3:// (tensorflow-io) ending without tensorflow-io's exit abort."""

import os
import signal
import subprocess
import sys

import pytest

from tests import object_stores

STEP = [sys.executable, "-m", "pipelines.kfp_step"]


def _run(tmp_path, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "step_module.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    return subprocess.run([*STEP, "step_module", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("import sys\nprint(sys.argv[1:])\n", 0),
        ("import sys\nsys.exit(3)\n", 3),
        ("import sys\nsys.exit('bad input')\n", 1),
        ("raise RuntimeError('boom')\n", 1),
    ],
)
def test_the_module_runs_as_main_and_its_exit_status_is_kept(tmp_path, source, status):
    completed = _run(tmp_path, source, "--flag", "value")
    assert completed.returncode == status
    if status == 0:
        assert completed.stdout.strip() == "['--flag', 'value']"
    if "boom" in source:
        assert "RuntimeError: boom" in completed.stderr
    if "bad input" in source:
        assert "bad input" in completed.stderr


def test_without_a_module_it_says_what_it_expects():
    completed = subprocess.run(STEP, capture_output=True, text=True)
    assert completed.returncode == 2
    assert "Expected a module to run" in completed.stderr


def test_python_exit_handlers_still_run(tmp_path):
    marker = tmp_path / "marker"
    completed = _run(
        tmp_path, f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).touch)\n"
    )
    assert completed.returncode == 0
    assert marker.exists()


@pytest.mark.slow
def test_a_step_that_wrote_to_s3_exits_0_where_python_alone_aborts(tmp_path, request):
    folder = object_stores.folder("s3", "kfp_step", request.session)
    source = (
        "import tensorflow as tf\n"
        "import tensorflow_io  # noqa: F401\n"
        f"tf.io.gfile.makedirs({folder!r})\n"
        f"with tf.io.gfile.GFile({folder + '/done'!r}, 'w') as handle:\n"
        "    handle.write('ok')\n"
    )
    (tmp_path / "direct.py").write_text(source)
    direct = subprocess.run([sys.executable, str(tmp_path / "direct.py")], capture_output=True)
    # SIGABRT (exit code 134 in a shell): tensorflow/io issue 2039, the entry point's reason.
    assert direct.returncode == -signal.SIGABRT

    stepped = _run(tmp_path, source)
    assert stepped.returncode == 0, stepped.stderr[-2000:]
