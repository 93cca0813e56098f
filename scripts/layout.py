"""Draw the package layout (modules and their imports) from the code, as docs/layout.md.

Nodes are the top-level modules of ``agcc`` with the stages, io and training modules shown one
by one; an edge a --> b means a imports b (directly, function-level imports included). The
drawing is a Mermaid flowchart, which GitHub and most Markdown viewers render.
``python scripts/layout.py`` writes docs/layout.md; ``--check`` exits 1 when it is stale
(tests/unit/test_layout_doc.py runs that check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "layout.md"
#: Packages drawn module by module; every other package is one node.
EXPANDED = ("agcc.stages", "agcc.io", "agcc.training")
GROUPS = {
    "agcc.stages": "stages",
    "agcc.io": "io (one reader + writer per artefact)",
    "agcc.training": "training",
}


def node(module: str) -> str | None:
    """The drawn node of a module: itself for expanded packages, else its top-level package."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    top = ".".join(parts[:2])
    if top in EXPANDED and len(parts) > 2:
        return ".".join(parts[:3])
    return top


def edges(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """(importer node, imported node) pairs between different nodes."""
    out = set()
    for module in graph.modules:
        a = node(module)
        for imported in graph.find_modules_directly_imported_by(module):
            b = node(imported)
            if a and b and a != b and not b.startswith(f"{a}."):
                out.add((a, b))
    return out


def label(module: str) -> str:
    """A node's id and label in Mermaid syntax."""
    return f'{module.replace(".", "_")}["{module.removeprefix("agcc.")}"]'


def render(graph: grimp.ImportGraph) -> str:
    """docs/layout.md: a short explanation and the Mermaid flowchart."""
    pairs = sorted(edges(graph))
    nodes = sorted({n for pair in pairs for n in pair} | {node(m) or m for m in graph.modules})
    nodes = [n for n in nodes if n != "agcc"]
    lines = ["flowchart LR"]
    for group, title in GROUPS.items():
        lines.append(f'  subgraph {group.replace(".", "_")}_group["{title}"]')
        lines += [f"    {label(n)}" for n in nodes if n.startswith(f"{group}.")]
        lines.append("  end")
    lines += [f"  {label(n)}" for n in nodes if not n.startswith(tuple(GROUPS))]
    lines += [f"  {a.replace('.', '_')} --> {b.replace('.', '_')}" for a, b in pairs]
    return HEADER + "```mermaid\n" + "\n".join(lines) + "\n```\n"


HEADER = """# Code layout: modules and their imports

Generated from the code by `make docs-layout` (scripts/layout.py); a test fails when it is
stale. An arrow a --> b means module a imports b. The command line (`cli`) imports the stages;
each stage imports only the library; the library never imports a stage. `lint-imports` (run by
`make test`) enforces this with the contracts in pyproject.toml.

"""


def main() -> int:
    """Write docs/layout.md, or with --check compare it with the code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/layout.md is stale")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    text = render(grimp.build_graph("agcc"))
    if args.check:
        stale = not OUT.is_file() or OUT.read_text() != text
        print(f"{OUT.relative_to(ROOT)} is {'stale: run make docs-layout' if stale else 'current'}")
        return int(stale)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
