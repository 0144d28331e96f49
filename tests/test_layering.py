"""Dependencies point one way: pipelines -> components -> models."""

import ast
import pathlib

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "models": {"tfx", "kfp", "components", "pipelines"},
    "components": {"pipelines", "kfp"},
    "serving": {"tfx", "kfp", "components", "pipelines"},
}


def imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_imported_roots_sees_both_import_forms(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("import tfx.v1 as tfx\nfrom kfp import dsl\nfrom . import sibling\n")
    assert imported_roots(source) == {"tfx", "kfp"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_or_orchestrator_imports(package):
    offending = {
        str(path.relative_to(REPOSITORY)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (REPOSITORY / package).rglob("*.py")
    }
    assert {path: roots for path, roots in offending.items() if roots} == {}
