"""Code fingerprints: a digest of a stage's own source, for cache keys and provenance.

:func:`code_fingerprint` digests the code of a stage: the wrapped function of an
``@stage`` function, else the stage's class (the whole class body: every method
defined in it). The stage result cache puts it in the key (``_cache.py``), so editing
a cached stage recomputes it; provenance records it per stage label (``_provenance.py``).

What the digest is made of, by preference:

1. **The source, normalized**: ``inspect.getsource`` of the function or class,
   dedented, parsed with :mod:`ast` and dumped without positions, docstrings left out.
   Comments, blank lines, formatting and docstrings do not change the fingerprint; any
   change to the code (a statement, a name, a constant, a default, a decorator's
   arguments) does. It is the same on every Python version whose ``ast.dump`` agrees.
2. **The compiled code**, when no source is available (a ``.pyc``-only install, a
   function made by ``exec``): the qualname plus, recursively through nested code
   objects, each code object's bytecode, constants and names. Also blind to comments,
   but specific to the Python version.

Not covered, by design (bump the stage's ``version`` for these): helper functions and
modules the stage calls, globals and constants it reads at run time, base classes it
inherits from, data files it reads, and the versions of installed packages (those are
recorded in the run's provenance, but are not part of the cache key).

A fingerprint is computed once per function or class object in a process and cached.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import Any

from ._memo import IdentityMemo
from ._stage import FunctionStage
from .persistence._blobs import digest_of

__all__ = ["code_fingerprint", "code_target"]

_fingerprints: IdentityMemo[Any, str] = IdentityMemo(4096)


def code_target(stage_obj: object) -> Any:
    """Return what a stage's fingerprint covers: its wrapped function, else its class."""
    if isinstance(stage_obj, FunctionStage):
        return stage_obj._fn
    if isinstance(stage_obj, type | types.FunctionType | types.MethodType):
        return stage_obj
    return type(stage_obj)


def code_fingerprint(stage_obj: object) -> str:
    """Return the fingerprint (32 hex characters) of ``stage_obj``'s own code.

    ``stage_obj`` is a stage object, a stage class or a function. See the module
    docstring for what the digest covers. Never raises for a Python object: without
    source or code it digests the qualified name alone.
    """
    return _fingerprints.get(code_target(stage_obj), _digest)


def _digest(target: Any) -> str:
    return digest_of([_source_part(target) or _compiled_part(target)])


def _source_part(target: Any) -> bytes | None:
    try:
        source = inspect.getsource(target)
        tree = ast.parse(textwrap.dedent(source))
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return b"ast:" + ast.dump(tree, annotate_fields=False, include_attributes=False).encode()


def _compiled_part(target: Any) -> bytes:
    parts: list[bytes] = [b"code:", _qualname(target).encode()]
    if isinstance(target, type):
        for name, member in sorted(vars(target).items()):
            fn = getattr(member, "__func__", member)  # staticmethod/classmethod
            code = getattr(fn, "__code__", None)
            if isinstance(code, types.CodeType):
                parts.append(name.encode())
                _code_bytes(code, parts)
    else:
        code = getattr(target, "__code__", None)
        if isinstance(code, types.CodeType):
            _code_bytes(code, parts)
    return b"\0".join(parts)


def _code_bytes(code: types.CodeType, parts: list[bytes]) -> None:
    parts.append(code.co_code)
    parts.append(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_bytes(const, parts)
        else:
            parts.append(repr(const).encode())


def _qualname(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{name}"
