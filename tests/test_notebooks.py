"""Every notebook runs headless, top to bottom, without an error, on small settings.

The notebooks share one dlforge home: the first that needs a pushed model runs the digits
pipeline with the smoke settings, the others read that run.
"""

import pathlib

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("notebooks") / "home")


def test_there_is_a_notebook_per_built_chapter():
    assert [path.stem for path in NOTEBOOKS] == [
        "01_foundations",
        "02_cnns",
        "03_sequences",
        "04_generative",
        "05_transformers_transfer",
        "06_reinforcement_learning",
        "07_compression_tflite",
        "08_serving_monitoring",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_without_error(path, home, monkeypatch):
    monkeypatch.setenv("DLFORGE_HOME", home)
    monkeypatch.setenv("DLFORGE_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(path, as_version=4)

    nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert figures, f"{path.name} showed no plot"
