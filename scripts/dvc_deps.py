"""The src/ dependencies of every DVC stage, computed from the import graph.

A stage's code is its module ``agcc.stages.<stage>``, everything that module imports directly or
indirectly (grimp's import graph, function-level imports included), the command line that runs
it, and the ``__init__`` of every package on the way. ``python scripts/dvc_deps.py`` rewrites the
``src/`` lines of each stage's deps in dvc.yaml and tune/dvc.yaml; ``--check`` only compares and
exits 1 naming each difference (tests/unit/test_dvc_deps.py runs that check).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PIPELINES = ("dvc.yaml", "tune/dvc.yaml")
#: Every stage runs through the console entry point (whose stage imports are lazy, so only the
#: modules it imports at top level count, with their own imports).
ENTRY = ("agcc", "agcc.cli")
ENTRY_IMPORTS = ("agcc.errors", "agcc.params")
_STAGE = re.compile(r"^  (\w+):\s*$")
_SRC_DEP = re.compile(r"^(\s+)- (src/\S+)\s*$")


def module_file(module: str) -> Path:
    """The source file of a module or package (relative to the repository root)."""
    path = SRC.joinpath(*module.split("."))
    return (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(ROOT)


def closure(graph: grimp.ImportGraph, module: str) -> set[str]:
    """``module`` and everything importing it runs: its imports, direct or indirect, and the
    ``__init__`` of every package on the way (with their own imports), to a fixed point."""
    todo, mods = [module, *ENTRY_IMPORTS], set(ENTRY)
    while todo:
        m = todo.pop()
        if m in mods:
            continue
        found = {m} | graph.find_upstream_modules(m)
        found |= {".".join(x.split(".")[:i]) for x in found for i in range(1, x.count(".") + 1)}
        todo += sorted(found - mods - {m})
        mods.add(m)
    return mods


def compress(files: set[Path]) -> list[str]:
    """Sorted paths, a whole folder named once when every .py file below it is in ``files``."""
    out: set[str] = {str(f) for f in files}
    for folder in sorted({f.parent for f in files}, key=lambda p: len(p.parts)):
        below = {p.relative_to(ROOT) for p in (ROOT / folder).rglob("*.py")}
        if folder != Path("src/agcc") and below and below <= files:
            out = {p for p in out if not p.startswith(f"{folder}/")} | {str(folder)}
    return sorted(p for p in out if not any(p.startswith(f"{q}/") for q in out if q != p))


def stage_deps(graph: grimp.ImportGraph, stage: str) -> list[str]:
    """The src/ paths DVC must hash for ``stage``."""
    return compress({module_file(m) for m in closure(graph, f"agcc.stages.{stage}")})


def stage_blocks(lines: list[str]) -> dict[str, tuple[list[int], str]]:
    """stage name -> (line indices of its src/ deps, their indentation)."""
    blocks: dict[str, tuple[list[int], str]] = {}
    stage = None
    for i, line in enumerate(lines):
        if m := _STAGE.match(line):
            stage = m.group(1)
        elif (m := _SRC_DEP.match(line)) and stage:
            blocks.setdefault(stage, ([], m.group(1)))[0].append(i)
    return blocks


def rewrite(path: Path, graph: grimp.ImportGraph, check: bool) -> list[str]:
    """Rewrite (or, with ``check``, compare) the src/ deps of every stage in one dvc.yaml."""
    lines = path.read_text().splitlines()
    problems = []
    for stage, (rows, indent) in sorted(stage_blocks(lines).items(), key=lambda kv: -kv[1][0][0]):
        want = stage_deps(graph, stage)
        have = [_SRC_DEP.match(lines[i]).group(2) for i in rows]
        if have != want:
            missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            problems.append(f"{path.name}:{stage}: missing {missing}, not imported {extra}")
            for i in reversed(rows):
                del lines[i]
            lines[rows[0] : rows[0]] = [f"{indent}- {dep}" for dep in want]
    if problems and not check:
        path.write_text("\n".join(lines) + "\n")
    return problems


def main() -> int:
    """Rewrite or check the src/ deps of every stage."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = ap.parse_args()
    sys.path.insert(0, str(SRC))
    graph = grimp.build_graph("agcc")
    problems = [p for f in PIPELINES for p in rewrite(ROOT / f, graph, args.check)]
    print("\n".join(problems) or "dvc.yaml src/ dependencies match the import graph")
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
