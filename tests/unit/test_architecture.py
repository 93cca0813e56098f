"""The code's shape: layering contracts, short functions, generated docs and DVC deps current."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "agcc"
MAX_FUNCTION_LINES = 60


def _script(name: str) -> ModuleType:
    """Import one of scripts/*.py as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_import_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_function_in_src_is_longer_than_the_limit() -> None:
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                n = fn.end_lineno - fn.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_code_cites_only_documents_in_the_repository() -> None:
    cited = [str(p.relative_to(REPO)) for p in SRC.rglob("*.py") if "METHOD.md" in p.read_text()]
    assert not cited, f"cite docs/method.md instead: {cited}"
    assert "## 7. SER model and losses" in (REPO / "docs" / "method.md").read_text()


def test_layout_diagram_is_current() -> None:
    sys.path.insert(0, str(REPO / "src"))
    layout = _script("layout")
    import grimp

    expected = layout.render(grimp.build_graph("agcc"))
    assert layout.OUT.read_text() == expected, "docs/layout.md is stale: run make docs-layout"


@pytest.fixture(scope="module")
def dvc_deps() -> ModuleType:
    """scripts/dvc_deps.py and the import graph it reads."""
    sys.path.insert(0, str(REPO / "src"))
    return _script("dvc_deps")


def test_dvc_src_deps_equal_each_stages_import_closure(dvc_deps: ModuleType) -> None:
    import grimp

    graph = grimp.build_graph("agcc")
    problems = [p for f in dvc_deps.PIPELINES for p in dvc_deps.rewrite(REPO / f, graph, True)]
    assert not problems, "\n".join(problems) + "\nrun: python scripts/dvc_deps.py"


def test_a_removed_dvc_dependency_is_named(dvc_deps: ModuleType, tmp_path: Path) -> None:
    import grimp

    lines = (REPO / "dvc.yaml").read_text().splitlines()
    dropped = next(i for i, line in enumerate(lines) if line.strip() == "- src/agcc/io/segments.py")
    copy = tmp_path / "dvc.yaml"
    copy.write_text("\n".join(lines[:dropped] + lines[dropped + 1 :]) + "\n")
    problems = dvc_deps.rewrite(copy, grimp.build_graph("agcc"), True)
    assert len(problems) == 1 and "src/agcc/io/segments.py" in problems[0], problems
