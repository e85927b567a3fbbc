"""The fenced code blocks of the documentation (README.md, docs/*.md, benchmarks/README.md).

A block is what a reader copies: every one runs in the tests (``tests/test_docs.py``) unless
the line right above its fence is a marker ``<!-- no-test: REASON -->``, allowed only where
the block needs the network or a GPU (the reason must say which). Languages: ``python``,
``yaml``, ``bash`` (code, all tested) and ``text`` (diagrams and sample output, not code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Every page whose blocks are tested, README first.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "README.md"]

#: Languages a block may have; ``text`` is the only one that is not run.
LANGUAGES = ("python", "yaml", "bash", "text")

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", flags=re.M | re.S)
_SKIP = re.compile(r"<!--\s*no-test:\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its code, why it is not run (if so)."""

    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _SKIP.fullmatch(before.strip())
        found.append(Block(page=page.relative_to(ROOT).as_posix(),
                           line=text.count("\n", 0, m.start()) + 1,
                           lang=m.group(1).strip(), code=m.group(2),
                           skip=marker.group(1) if marker else None))
    return found


def all_blocks(lang: str | None = None) -> list[Block]:
    """Every page's blocks (of language ``lang``, if given)."""
    return [b for page in PAGES for b in blocks(page) if lang is None or b.lang == lang]
