"""Marks derived from what a test's code reaches, so nobody has to remember to add them by hand.

A test is marked ``subprocess`` when its function, a fixture it uses, or a helper either of them calls (functions,
classes and modules of this suite, followed transitively) refers to the ``subprocess`` module or asyncio's
subprocess functions: a `vibexp serve` (``LiveServer``), the CLI, promtool, node. It is marked ``postgres`` when
it runs on PostgreSQL: a ``"postgres"`` parameter (``database_url``, ``empty_database_url``, a ``kind``), or, for a
test without a database parameter, code that reaches ``create_postgres_database``, ``POSTGRES_URL`` or
``PrivatePostgres``. A test whose parameter says ``"sqlite"`` is a SQLite test whatever its code could reach.

The derivation reads code, so it can miss a process started through a value it cannot follow: the guard in
tests/conftest.py fails any test that starts a process without one of ``PROCESS_MARKS``.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.databases import DATABASE_KINDS

__all__ = ["PROCESS_MARKS", "database_kind", "derived_marks"]

TESTS = Path(__file__).resolve().parents[1]
#: Marks of tests that may start processes (the guard lets these through).
PROCESS_MARKS = frozenset({"subprocess", "kube", "browser", "clients"})
#: What starting a process looks like in code.
_SPAWNERS: tuple[object, ...] = (
    subprocess,
    asyncio.create_subprocess_exec,
    asyncio.create_subprocess_shell,
)
#: Names of the helpers that reach a PostgreSQL server of their own.
_POSTGRES_NAMES = frozenset({"create_postgres_database", "POSTGRES_URL", "PrivatePostgres"})
#: Fixtures that are not read: the suite's guard stops leftover servers (it starts none).
_NOT_READ = frozenset({"no_server_outlives_the_suite"})

_cache: dict[int, frozenset[str]] = {}


def _in_suite(obj: object) -> bool:
    module = sys.modules.get(getattr(obj, "__module__", "") or "") if not isinstance(obj, types.ModuleType) else obj
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(TESTS)


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _functions(obj: object) -> Iterator[Callable[..., Any]]:
    """The functions whose code ``obj`` runs: itself, a class's methods (properties included)."""
    if inspect.isclass(obj):
        for value in vars(obj).values():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                yield from (f for f in (value.fget, value.fset) if f is not None)
            elif inspect.isfunction(value):
                yield value
    elif inspect.isfunction(obj):
        yield obj


def _traits(obj: object, seen: set[int]) -> frozenset[str]:
    """``{"subprocess", "postgres"}`` or a part of it: what ``obj``'s code reaches."""
    if id(obj) in _cache:
        return _cache[id(obj)]
    if id(obj) in seen:
        return frozenset()
    seen.add(id(obj))
    found: set[str] = set()
    for function in _functions(inspect.unwrap(obj) if callable(obj) else obj):
        namespace = function.__globals__
        for code in _codes(function.__code__):
            names = code.co_names
            for name in names:
                if name in _POSTGRES_NAMES:
                    found.add("postgres")
                target = namespace.get(name)
                if target is None:
                    continue
                if any(target is spawner for spawner in _SPAWNERS):
                    found.add("subprocess")
                elif isinstance(target, types.ModuleType) and _in_suite(target):
                    # `module.helper(...)`: follow the attributes of a suite module that this code names.
                    for attribute in names:
                        value = getattr(target, attribute, None)
                        if value is not None and (inspect.isfunction(value) or inspect.isclass(value)):
                            found |= _traits(value, seen)
                elif (inspect.isfunction(target) or inspect.isclass(target)) and _in_suite(target):
                    found |= _traits(target, seen)
    result = frozenset(found)
    _cache[id(obj)] = result
    return result


def database_kind(item: pytest.Item) -> str | None:
    """The database a test runs on, as its parameters say ("sqlite", "postgres"), or None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    kinds = {value for value in callspec.params.values() if isinstance(value, str) and value in DATABASE_KINDS}
    return kinds.pop() if len(kinds) == 1 else None


def derived_marks(item: pytest.Item) -> set[str]:
    """The marks ``item`` gets from its code and parameters (see the module's docstring)."""
    traits: set[str] = set()
    function = getattr(item, "function", None)
    if function is not None:
        traits |= _traits(function, set())
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        definitions = info.name2fixturedefs.get(name) if info is not None else None
        if definitions and name not in _NOT_READ:
            traits |= _traits(definitions[-1].func, set())
    kind = database_kind(item)
    if kind is not None:  # the parameter decides, not the helpers the code could reach
        traits.discard("postgres")
        if kind == "postgres":
            traits.add("postgres")
    return traits
