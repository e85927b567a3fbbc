"""YAML configs: their keys are constructor keyword arguments, checked before any work.

A config is a mapping whose keys are :class:`~torchnas.ModelSearch` arguments; ``trainer`` is a
mapping of :class:`~torchnas.Trainer` arguments, ``data`` a dataset name or ``{name: ...,
**load arguments}``, ``strategy`` a name or ``{name: ..., **arguments}``. ``space`` and ``data``
may also name a function of your own as ``package.module:function``. An unknown key is an error
naming it and the closest valid keys; so is a value of the wrong type.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import reprlib
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml

from torchnas._util.errors import ConfigError, did_you_mean

__all__ = [
    "MAX_NODES", "apply_overrides", "check_keys", "code_refs", "dump_config", "load_config",
    "parse_value", "resolve_object", "short_repr",
]

#: The most values a YAML document may hold once its aliases (``*name``) are expanded: a
#: config of this size is far past any real one, while a few hundred bytes of nested anchors
#: (a "billion laughs" file) expand to billions, which no message or check could walk.
MAX_NODES = 100_000

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: Any, limit: int = 160) -> str:
    """``repr(value)`` cut to a line of at most ``limit`` characters (nesting, lengths and
    strings bounded first): what an error message shows of a config value, however large or
    deeply shared the value is."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e-3`` as a float, as YAML 1.2 does (YAML 1.1 wants a dot:
    ``1.0e-3``, and PyYAML makes ``1e-3`` a string), and refusing a key given twice in one
    mapping (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"key {key!r} is given twice (first on line {first.start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def get_single_node(self) -> yaml.Node | None:
        """The document's node graph, refused when its aliases expand past :data:`MAX_NODES`
        values or refer to themselves (counted once per node: milliseconds for any file)."""
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Raises ``yaml.YAMLError`` when ``root`` expands to more than :data:`MAX_NODES` values."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to the value that contains it", node.start_mark)
        open_.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        open_.discard(key)
        if total > MAX_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"its aliases expand to more than {MAX_NODES:,} values (nested "
                f"anchors: refused rather than expanded)", node.start_mark)
        sizes[key] = total
        return total

    size(root)


class _Dumper(yaml.SafeDumper):
    """The safe dumper matching :class:`_Loader` (it quotes a string such as ``"1e-3"``)."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def dump_config(config: Mapping[str, Any]) -> str:
    """A config as YAML that :func:`load_config` reads back unchanged."""
    return yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False)


def parse_value(text: str) -> Any:
    """A YAML scalar or flow value as a config holds it (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Loader)


def load_config(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping safely (no Python objects); errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: malformed YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{p}: the config is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the config must be a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Applies ``key=value`` overrides (YAML values; dotted keys reach into mappings)."""
    out = dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key in {key!r}")
        try:
            value = parse_value(raw) if raw else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: malformed YAML value: {exc}") from None
        node = out
        for depth, part in enumerate(parts[:-1], 1):
            child = node.get(part)
            if isinstance(child, str):  # a name stands for {name: ...}: data, strategy
                child = {"name": child}
            elif child is None:
                child = {}
            elif isinstance(child, dict):
                child = dict(child)
            else:
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth])!r} is "
                                  f"{short_repr(child)}, not a mapping")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def check_keys(where: str, given: Mapping[str, Any], target: Callable[..., Any],
               skip: Sequence[str] = ()) -> None:
    """Raises :class:`ConfigError` for keys ``target`` does not take or values of wrong type."""
    sig = inspect.signature(target)
    params = {n: p for n, p in sig.parameters.items()
              if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    for key, value in given.items():
        if key in skip:
            continue
        if key not in params:
            if takes_any:
                continue
            hint = did_you_mean(key, params, n=3, cutoff=0.5)
            raise ConfigError(f"{where}: unknown key {key!r}{hint} (valid: {', '.join(params)})")
        hint_type = hints.get(key)
        if hint_type is not None and not _matches(value, hint_type):
            raise ConfigError(
                f"{where}: key {key!r} must be {_describe(hint_type)}, got {short_repr(value)} "
                f"({type(value).__name__})"
            )


def code_refs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(key, reference)`` pairs by which ``config`` names code to import and run:
    ``space``, ``train_fn`` and ``data`` (or ``data.name``) as ``package.module:function``, and
    an Optuna sampler as a class path (``strategy.sampler``). A config is code, like a Python
    script: the reading commands refuse these in a config they were not handed."""
    found = []
    for key in ("space", "train_fn", "data"):
        value = config.get(key)
        if key == "data" and isinstance(value, Mapping):
            key, value = "data.name", value.get("name")
        if isinstance(value, str) and ":" in value:
            found.append((key, value))
    strategy = config.get("strategy")
    sampler = strategy.get("sampler") if isinstance(strategy, Mapping) else None
    if isinstance(sampler, str) and "." in sampler:  # the built-in samplers' names have none
        found.append(("strategy.sampler", sampler))
    return found


def resolve_object(where: str, ref: str) -> Any:
    """Imports ``package.module:attribute``, which must be callable and not of the standard
    library (``os:system`` is no space, loader or training loop).

    Raises:
        ConfigError: naming ``where`` and ``ref`` when ``ref`` is not of that form, names a
            standard-library module, when the module cannot be imported (not found, a syntax
            error: with its file and line, or any error its code raises on import) or has no
            such attribute, or when that attribute cannot be called.
    """
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ConfigError(f"{where}: {short_repr(ref)} is not of the form package.module:name")
    if module_name.partition(".")[0] in sys.stdlib_module_names:
        raise ConfigError(f"{where}: {short_repr(ref)} names the standard library's "
                          f"{module_name!r}, not a function of your own")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({exc})") from None
    except SyntaxError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r}: syntax error in "
                          f"{exc.filename}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the module's own code failed: name it and what it raised
        raise ConfigError(f"{where}: importing {module_name!r} raised "
                          f"{type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            near = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")],
                                             n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise ConfigError(f"{where}: {module_name!r} has no {attr!r}{hint}") from None
    if not callable(obj):
        raise ConfigError(f"{where}: {ref} is a {type(obj).__name__}, not a function")
    return obj


def _matches(value: Any, hint: Any) -> bool:
    """A lenient structural check of a YAML value against a type annotation."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint
    if base in (dict, Mapping) or (inspect.isclass(base) and issubclass(base, Mapping)):
        return isinstance(value, dict)
    if base in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    if inspect.isclass(base):  # an object (Trainer, Strategy, ...) that YAML writes as a mapping
        return isinstance(value, (dict, base))
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    base = typing.get_origin(hint) or hint
    return {dict: "a mapping", list: "a list", tuple: "a list", Mapping: "a mapping",
            Sequence: "a list"}.get(base, getattr(base, "__name__", str(base)))
