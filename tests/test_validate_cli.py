"""`dlforge validate` on the command line: exit codes, the report, and nothing written but a
temporary folder. (Against a home with a blessed model: see the end-to-end test.)"""

import os
import re
import shutil
import tempfile

import numpy as np
import pytest

from models.data import digits
from pipelines import cli
from tests.files import snapshot

PREFIX = "dlforge-validate-"


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty home and an empty working directory to check that nothing lands in them."""
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("DLFORGE_HOME", str(tmp_path / "elsewhere"))
    return tmp_path


def test_a_malformed_file_exits_2_with_one_line_and_leaves_nothing(workspace, capsys, monkeypatch):
    # In a fresh temp folder, so that other processes' temporary files do not count.
    monkeypatch.setattr(tempfile, "tempdir", str(workspace / "tmp"))
    os.mkdir(workspace / "tmp")
    path = workspace / "bad.csv"
    path.write_text(",".join(digits.PIXEL_KEYS) + ",label\n" + ",".join(["1"] * 64) + ",x\n")
    code = cli.main(["validate", "--data", str(path), "--home", str(workspace / "home")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip() == (
        f"dlforge: error: {path}, line 2, column 'label': expected an integer, found 'x'."
    )
    assert not [name for name in os.listdir(tempfile.gettempdir()) if name.startswith(PREFIX)]
    assert snapshot(workspace / "home") == {} and os.listdir(".") == []


@pytest.mark.slow
def test_bad_data_exits_1_with_a_per_feature_report(workspace, capsys):
    pixels, labels = digits.load_digits_arrays()
    pixels[10, 42] = 30
    labels[labels == 4] = 9
    path = str(workspace / "mine.csv")
    digits.write_csv(path, pixels, labels)
    code = cli.main(["validate", "--data", path, "--home", str(workspace / "home")])
    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    assert re.fullmatch(
        rf"{re.escape(path)}: 1797 rows \(train \d+, eval \d+, test \d+\)", lines[0]
    )
    assert re.search(r"schema \(TFDV\) +FAILED \(1\)", out)
    assert re.search(r"expectations \(Great Expectations\) +FAILED", out)
    home = re.escape(str(workspace / "home"))
    assert re.search(rf"\n  drift +passed  not measured: no blessed model in {home}\n", out)
    feature = lines.index("feature 'pixel_42':")
    assert lines[feature + 1].startswith("  schema (TFDV), split ")
    assert "Out-of-range values (Unexpectedly large value: 30.)" in lines[feature + 1]
    assert "values out of range (1 value(s) outside 0..16, e.g. 30)" in lines[feature + 2]
    assert "feature 'label':" in lines
    assert "degenerate distribution (Kullback-Leibler divergence from uniform" in out
    assert lines[-1].startswith("result: FAILED (2 check(s)); Data Docs: ")
    docs = lines[-1].split("Data Docs: ")[1]
    assert os.path.exists(docs)
    output_dir = docs.split(os.sep + "expectations")[0]
    assert os.path.dirname(output_dir) == tempfile.gettempdir()
    shutil.rmtree(output_dir)
    assert snapshot(workspace / "home") == {} and os.listdir(".") == []
    assert not os.path.exists(workspace / "elsewhere")
    assert np.all(digits.read_csv(path)[1] != 4)  # the input is read, never rewritten
