"""The package's layering: every module imports only from layers below its own, never upward.

Layers, bottom to top (modules of one layer are independent of each other):

0. ``version``;
1. ``typing``, ``tree``, ``ops``, ``metrics``, ``progress``, ``data``, ``provenance`` — no jaxsnn
   imports but the version, or only of their own package;
2. ``neurons``; 3. ``models``; 4. ``convert``; 5. ``simulate``;
6. ``methods``, ``train``, ``export``;
7. ``cli`` — the command-line engine.

The test reads every ``import`` in ``jaxsnn/`` (also those inside functions) with ``ast``, so an
upward or sideways import fails here the moment it is written.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jaxsnn"
LAYERS = [
    {"version"},
    {"typing", "tree", "ops", "metrics", "progress", "data", "provenance"},
    {"neurons"},
    {"models"},
    {"convert"},
    {"simulate"},
    {"methods", "train", "export"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(path: pathlib.Path) -> str | None:
    """The top-level unit (subpackage or module) a file of jaxsnn belongs to."""
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__init__.py",):
        return None  # The public surface re-exports everything.
    return rel.parts[0].removesuffix(".py")


def _imported_units(path: pathlib.Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "jaxsnn":  # ``from jaxsnn import tree, progress``
                names = [f"jaxsnn.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}: relative import; use absolute jaxsnn imports")
        for name in names:
            parts = name.split(".")
            if parts[0] == "jaxsnn" and len(parts) > 1:
                units.add(parts[1])
    return units


def _edges():
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        if unit is not None:
            for target in _imported_units(path) - {unit}:
                yield path.relative_to(PACKAGE.parent), unit, target


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in PACKAGE.rglob("*.py")} - {None}
    assert units <= set(RANK), f"units without a layer: {sorted(units - set(RANK))}"


@pytest.mark.parametrize("path,unit,target", list(_edges()), ids=lambda v: str(v))
def test_imports_only_go_down(path, unit, target):
    assert target in RANK, f"{path} imports jaxsnn.{target}, which has no layer"
    assert RANK[target] < RANK[unit], (
        f"{path} ({unit}, layer {RANK[unit]}) imports jaxsnn.{target} (layer {RANK[target]}): "
        "imports must go to a lower layer"
    )


def test_the_check_catches_an_upward_import(tmp_path):
    """The checker itself: a module of ``models`` importing ``jaxsnn.methods`` is reported."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from jaxsnn.methods import convert\n")
    assert _imported_units(source) == {"methods"}
    assert RANK["methods"] > RANK["models"]
