"""One registry class for every plug-in kind, and one base class for configurable plug-ins.

Each kind (strategies, schedulers, executors, one-shot methods, spaces, datasets) keeps its
entries in one :class:`Registry`, filled where each entry is defined by a decorator that
writes the name once (timm's ``@register_model``)::

    @register("random")
    class RandomStrategy(Strategy):
        ...

and read through the same three calls: ``available()``, ``create(name, **settings)`` and
``resolve(spec)``. Plug-ins whose constructor is their config derive from :class:`Configurable`
(scikit-learn's ``BaseEstimator``): ``get_params()`` and ``repr()`` come from the ``__init__``
signature, and :meth:`Configurable.check` validates the settings at one moment, when a
registry hands the plug-in out (:meth:`Registry.create`, :meth:`Registry.resolve`): before a
study or search touches storage.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from torchnas._util.config import short_repr
from torchnas._util.errors import ConfigError, TorchnasError, did_you_mean

__all__ = ["Configurable", "Registry"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Configurable:
    """Base class of plug-ins whose constructor is their config.

    A subclass stores every ``__init__`` argument, as given, in an attribute of the same name
    (no logic in ``__init__``; a dataclass does this by itself) and checks them in
    :meth:`check`. ``get_params()`` reads them back, ``repr()`` shows those that differ from
    their defaults, and ``type(obj)(**obj.get_params())`` builds an equal object.
    """

    @classmethod
    def _param_defaults(cls) -> dict[str, Any]:
        """``{name: default}`` of the constructor's keyword arguments (no default: ``empty``).

        A subclass whose ``__init__`` passes ``**kwargs`` on (``def __init__(self, **kw):
        super().__init__(**kw)``) has its base's arguments too."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            params = inspect.signature(init).parameters.values()
            for p in params:
                if p.kind in _KINDS and p.name != "self":
                    out.setdefault(p.name, p.default)
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return out

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, read back from the attributes of the same name."""
        params = {}
        for name in self._param_defaults():
            try:
                params[name] = getattr(self, name)
            except AttributeError:
                raise AttributeError(
                    f"{type(self).__name__} has no attribute {name!r}: a Configurable stores "
                    f"each __init__ argument in an attribute of the same name") from None
        return params

    def check(self) -> None:
        """Raises :class:`~torchnas.ConfigError` naming a bad setting; the default checks
        nothing. A registry calls it once, when it hands the plug-in out (``create``,
        ``resolve``), before a study touches storage."""

    def __repr__(self) -> str:
        defaults = self._param_defaults()
        changed = {k: v for k, v in self.get_params().items() if not _same(v, defaults[k])}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # e.g. arrays, whose == is elementwise
        return False


class Registry(Generic[T]):
    """Named plug-ins of one kind: classes or functions that build a ``T``.

    Args:
        kind: what the entries are, for messages (``"strategy"``, ``"space"``, ``"dataset"``).
        base: the class of what the entries build; :meth:`resolve` passes its instances
            through (checked).
    """

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding a class or factory function under ``name``, where it is defined
        (a name is registered once); a class also gets ``cls.name = name``."""

        def wrap(entry: F) -> F:
            self.add(name, entry)
            if isinstance(entry, type):
                entry.name = name  # type: ignore[attr-defined]
            return entry

        return wrap

    def add(self, name: str, entry: Callable[..., T]) -> None:
        """Adds ``entry`` under ``name``; ``ValueError`` when the name is taken."""
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Removes an entry (for plug-ins registered temporarily, e.g. in tests)."""
        del self._entries[name]

    def get(self, name: str, extra: tuple[str, ...] = ()) -> Callable[..., T]:
        """The entry ``name``; :class:`ConfigError` naming the closest names when unknown.

        ``extra`` are valid names handled by the caller (listed in the message).
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = sorted([*self._entries, *extra])
            hint = did_you_mean(name, known)
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint} (available: {', '.join(known)})"
            ) from None

    def check_settings(self, name: str, factory: Callable[..., Any],
                       settings: Mapping[str, Any]) -> None:
        """:class:`ConfigError` naming a setting ``factory`` does not take, and the closest
        ones it does (a factory taking ``**kwargs`` accepts anything)."""
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        valid = [k for k, p in params.items() if k != "self" and p.kind in _KINDS]
        for key in settings:
            if key not in valid:
                hint = did_you_mean(key, valid, n=2)
                raise ConfigError(f"{self.kind} {name!r}: unknown setting {key!r}{hint} "
                                  f"(valid: {', '.join(valid) or 'none'})")

    def create(self, name: str, **settings: Any) -> T:
        """Builds the entry ``name`` with ``settings`` and checks it (:meth:`Configurable.check`).

        Raises:
            ConfigError: for an unknown name or setting (naming the closest ones), or a bad
                value.
        """
        factory = self.get(name)
        self.check_settings(name, factory, settings)
        try:
            found = factory(**settings)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from exc
        self._check(name, found)
        return found

    def resolve(self, spec: Any) -> T:
        """An object from a name, ``{"name": ..., **settings}`` or an instance of ``base``
        (checked once, as :meth:`create` checks what it builds)."""
        if self.base is not None and isinstance(spec, self.base):
            self._check(getattr(spec, "name", "") or type(spec).__name__, spec)
            return cast(T, spec)
        if isinstance(spec, str):
            return self.create(spec)
        if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            return self.create(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
        what = f", a {self.base.__name__}" if self.base is not None else ""
        raise ConfigError(f"{self.kind} must be a name{what} or {{'name': ...}}, "
                          f"got {short_repr(spec)}")

    def spec_of(self, spec: Any) -> dict[str, Any]:
        """What a study stores for ``spec`` (see :meth:`resolve`): ``{"name": ...}`` for a name,
        a copy of a mapping, and an object's name with its :meth:`Configurable.get_params`."""
        if isinstance(spec, str):
            return {"name": spec}
        if isinstance(spec, Mapping):
            return dict(spec)
        return {"name": getattr(spec, "name", "") or type(spec).__name__, **spec.get_params()}

    def available(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted (the same as :meth:`available`)."""
        return self.available()

    def _check(self, name: str, found: Any) -> None:
        if not isinstance(found, Configurable):
            return
        try:
            found.check()
        except TorchnasError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from exc

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())
