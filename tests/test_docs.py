"""Every code block of the documentation runs (README.md, docs/*.md, benchmarks/README.md).

- ``python``: each block on its own, as a reader pastes it, in a fresh namespace and an empty
  working directory; a block with an ``if __name__ == "__main__":`` guard (process workers
  re-import the script) runs as a script in a fresh Python process.
- Files: a ``python`` or ``yaml`` block whose first line is ``# NAME.py`` / ``# NAME.yaml`` is
  a file the commands below it use, not a snippet.
- ``yaml``, files and ``bash``: a page's blocks run in order in one empty working directory.
  A file block is written there. A YAML block is a whole config, loaded by the config loader
  and built with ``build_search`` (checked, not run). In a ``bash`` block, ``torchnas ...``
  runs (the ``torchnas`` entry point, in-process) and must succeed; ``torchnas dashboard`` is
  started, its page fetched, and stopped; ``python NAME.py`` and ``pytest ...`` run in a fresh
  Python process and must succeed; ``python benchmarks/NAME.py ...`` is checked, not run (a
  benchmark takes minutes to hours): the script exists and takes every ``--flag`` given.
- A block below ``<!-- no-test: REASON -->`` is skipped with that reason, which must say it
  needs the network or a GPU. README.md's first block is the two commands of
  ``tests/test_readme.py`` (CI runs the second; the first is the whole main job).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from docblocks import LANGUAGES, PAGES, ROOT, Block, all_blocks, blocks

from torchnas import cli


def _param(block: Block) -> Any:
    marks = [pytest.mark.skip(reason=f"{block.id}: {block.skip}")] if block.skip else []
    return pytest.param(block, id=block.id, marks=marks)


def _readme_commands(block: Block) -> bool:
    return block.page == "README.md" and block == blocks(ROOT / "README.md")[0]


# -- python ---------------------------------------------------------------------------------

def _file_name(block: Block) -> str | None:
    """``NAME.py`` / ``NAME.yaml`` when the block's first line names the file it is."""
    first = block.code.split("\n", 1)[0]
    named = re.fullmatch(r"#\s*([\w.-]+\.(?:py|ya?ml))\s*", first)
    return named.group(1) if named else None


@pytest.mark.parametrize("block", [_param(b) for b in all_blocks("python") if not _file_name(b)])
def test_python_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    code = "\n" * block.line + block.code  # tracebacks give the page's own line numbers
    if re.search(r"^if __name__ == .__main__.:", block.code, flags=re.M):
        script = tmp_path / "example.py"
        script.write_text(code, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout}\n{proc.stderr}"
        return
    exec(compile(code, str(ROOT / block.page), "exec"), {"__name__": "docs_example"})


# -- files, yaml and bash -------------------------------------------------------------------

def _in_session(block: Block) -> bool:
    return (block.lang in ("yaml", "bash") or _file_name(block) is not None) and not (
        _readme_commands(block))


def _session_pages() -> list[Any]:
    out = []
    for page in PAGES:
        run = [b for b in blocks(page) if _in_session(b)]
        if run:
            out.append(pytest.param(run, id=page.relative_to(ROOT).as_posix()))
    return out


@pytest.mark.parametrize("session", _session_pages())
def test_files_configs_and_commands(session: list[Block], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # the command sets these for its process; keep them from leaking into other tests
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(cli.ONEDNN_CACHE))
    for block in session:
        if block.skip:
            continue
        name = _file_name(block)
        if name or block.lang == "yaml":
            path = tmp_path / (name or "config.yaml")
            path.write_text(block.code, encoding="utf-8")
        if block.lang == "yaml":
            cli.build_search(cli.load_config(path), where=block.id)  # what `search` does first
            if not name:
                path.unlink()
        elif block.lang == "bash":
            for command in _commands(block.code):
                _run(block, command, tmp_path)


def _commands(code: str) -> list[list[str]]:
    """The commands of a shell block: comments dropped, ``\\`` continuations joined."""
    text = re.sub(r"\\\n", " ", code)
    return [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]


def _run(block: Block, words: list[str], cwd: Path) -> None:
    where = f"{block.id}: {shlex.join(words)}"
    if words[0] == "torchnas" and words[1:2] == ["dashboard"]:
        _serve_once(words[1:], cwd, where)
    elif words[0] == "torchnas":
        assert cli.main(words[1:]) == 0, where
    elif words[0] in ("python", "python3") and words[1].startswith("benchmarks/"):
        script = ROOT / words[1]
        assert script.is_file(), f"{where}: no such benchmark"
        source = script.read_text(encoding="utf-8")
        for flag in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert f'"{flag}"' in source, f"{where}: {words[1]} has no option {flag}"
    elif words[0] in ("python", "python3", "pytest"):
        if words[0] == "pytest":
            words = ["python", "-m", "pytest", "-p", "no:cacheprovider", *words[1:]]
        else:
            assert (cwd / words[1]).is_file(), f"{where}: no block above writes {words[1]}"
        proc = subprocess.run([sys.executable, *words[1:]], cwd=cwd, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{where} failed:\n{proc.stdout}\n{proc.stderr}"
    else:
        pytest.fail(f"{where}: a command the docs test cannot run; teach tests/test_docs.py "
                    f"to run it, or mark the block <!-- no-test: ... --> if it needs the "
                    f"network or a GPU")


def _serve_once(args: list[str], cwd: Path, where: str) -> None:
    """Starts ``torchnas dashboard`` on a free port, fetches the page it serves, stops it."""
    if "--port" in args:
        i = args.index("--port")
        args = args[:i] + args[i + 2:]
    proc = subprocess.Popen([sys.executable, "-m", "torchnas.cli", *args, "--port", "0"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first: list[str] = []
        reader = threading.Thread(target=_read_line, args=(proc, first), daemon=True)
        reader.start()
        reader.join(60)
        url = re.search(r"http://\S+", first[0] if first else "")
        assert url, f"{where}: no URL printed ({first})"
        with urllib.request.urlopen(url.group(0), timeout=30) as page:
            assert page.status == 200, where
    finally:
        proc.terminate()
        proc.wait(30)


def _read_line(proc: subprocess.Popen[str], into: list[str]) -> None:
    assert proc.stdout is not None
    into.append(proc.stdout.readline())


# -- the pages themselves -------------------------------------------------------------------

def test_every_block_is_tested_or_says_why_not() -> None:
    for block in all_blocks():
        assert block.lang in LANGUAGES, f"{block.id}: fence language {block.lang!r}"
        if block.skip is not None:
            assert re.search(r"\bnetwork\b|\bGPU", block.skip), (
                f"{block.id}: a block is left untested only when it needs the network or a "
                f"GPU, and its marker says which (got {block.skip!r})")
        if block.lang == "python":  # the skipped ones too: at least they parse
            compile(block.code, block.id, "exec")
        if block.lang == "text":
            assert not re.search(r"^\s*(import |from \w+ import |torchnas )", block.code,
                                 flags=re.M), f"{block.id}: code in a text block"


def test_every_file_block_is_used() -> None:
    for page in PAGES:
        found = blocks(page)
        for i, block in enumerate(found):
            name = _file_name(block)
            if name is None:
                continue
            later = "\n".join(b.code for b in found[i + 1:] if b.lang in ("bash", "python"))
            stem = name.rsplit(".", 1)[0]
            assert re.search(rf"\b{re.escape(name)}\b|\bimport {re.escape(stem)}\b|"
                             rf"\bfrom {re.escape(stem)} import\b", later), (
                f"{block.id}: no command or file below uses {name}, so it never runs")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_links_point_somewhere() -> None:
    for page in PAGES:
        text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                assert anchor in {_slug(h) for h in headings}, (
                    f"{page.relative_to(ROOT)}: no heading for #{anchor} in {path or page.name}")


def test_the_readme_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {Path(t.partition("#")[0]) for t in re.findall(r"\]\(([^)#\s]+)", readme)}
    for page in PAGES[1:]:
        assert page.relative_to(ROOT) in linked, f"README.md does not link {page.name}"


def test_yaml_blocks_are_mappings() -> None:
    for block in all_blocks("yaml"):
        assert isinstance(yaml.safe_load(block.code), dict), f"{block.id}: not a config"
