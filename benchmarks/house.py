"""The shape of the package (issue 13's figures): modules at the package root, the largest
class and the largest module, for the working tree or any git revision.

    python benchmarks/house.py            # the working tree
    python benchmarks/house.py c1f60c0    # a revision (read with git show; nothing checked out)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sources(rev: str | None) -> dict[str, str]:
    """``{path: text}`` of every .py file under torchnas/ at ``rev`` (``None``: on disk)."""
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "torchnas").rglob("*.py")}
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "torchnas/"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
            for n in names if n.endswith(".py")}


def shape(files: dict[str, str]) -> dict[str, object]:
    classes = []
    for path, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                classes.append((node.end_lineno - node.lineno + 1, f"{path}:{node.name}"))
    modules = sorted((t.count("\n"), p) for p, t in files.items())
    root = sorted(p for p in files if p.count("/") == 1)
    return {"root_modules": len(root), "root": root, "largest_class": max(classes),
            "largest_module": modules[-1], "modules": len(files)}


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else None
    s = shape(sources(rev))
    print(f"{rev or 'working tree'}: {s['modules']} modules; {s['root_modules']} at the package "
          f"root ({', '.join(Path(str(p)).name for p in s['root'])})")  # type: ignore[attr-defined]
    lines, name = s["largest_class"]  # type: ignore[misc]
    print(f"  largest class: {name} ({lines} lines)")
    lines, name = s["largest_module"]  # type: ignore[misc]
    print(f"  largest module: {name} ({lines} lines)")


if __name__ == "__main__":
    main()
