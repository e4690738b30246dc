"""The layering rule of DESIGN.md and CONVENTIONS.md, checked on the source: no capability package imports another
(shared physics and plumbing live below them), and nothing below the capabilities imports one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_modules"
CAPABILITIES = ("qsm", "ivim", "spio", "rim")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _capabilities_imported(path: Path) -> set[str]:
    return {name.split(".")[1] for name in _imported_modules(path)
            if name.startswith("lightning_modules.") and name.split(".")[1] in CAPABILITIES}


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_no_capability_imports_another(capability):
    crossing = {str(p.relative_to(PACKAGE)): sorted(_capabilities_imported(p) - {capability})
                for p in (PACKAGE / capability).rglob("*.py")}
    assert not {k: v for k, v in crossing.items() if v}


def test_shared_layer_imports_no_capability():
    shared = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in CAPABILITIES]
    assert len(shared) >= 5
    crossing = {str(p.relative_to(PACKAGE)): sorted(_capabilities_imported(p)) for p in shared}
    assert not {k: v for k, v in crossing.items() if v}
