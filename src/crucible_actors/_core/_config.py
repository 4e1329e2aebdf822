"""Project configuration: ``crucible.toml``, or ``[tool.crucible]`` in ``pyproject.toml``.

:func:`find_config` searches from a directory (default: the working directory) up to the
filesystem root and returns the first configuration it meets, the way ruff finds its
own: in each directory ``crucible.toml`` comes first, then a ``pyproject.toml`` that has
a ``[tool.crucible]`` table (one without it does not count, and the search goes on). The
nearest file wins whole; tables are not merged across files. The registry reads
``stages`` from it and the ``guardrails`` stage reads ``guardrails``.

Sync file IO: async callers run :func:`find_config` in a worker thread.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Final

__all__ = ["CONFIG_FILE", "PYPROJECT_FILE", "ConfigFile", "ConfigFileError", "find_config"]

CONFIG_FILE: Final = "crucible.toml"
PYPROJECT_FILE: Final = "pyproject.toml"


class ConfigFileError(ValueError):
    """A configuration file was found but cannot be read or parsed; ``path`` names it.

    Callers turn it into their own error (the registry's :class:`SchemaError`, the
    ``guardrails`` stage's :class:`InvalidOptions`).
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


class ConfigFile:
    """The configuration found: its ``path``, its ``data`` and where the tables live.

    ``data`` is the whole of ``crucible.toml``, or the ``[tool.crucible]`` table of a
    ``pyproject.toml``; :meth:`table_name` spells a table as the user wrote it.
    """

    __slots__ = ("data", "path", "prefix")

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.data = data
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"<ConfigFile {self.path}>"

    def table_name(self, name: str) -> str:
        """Return ``[name]`` as written in this file, e.g. ``[tool.crucible.stages]``."""
        return f"[{self.prefix}{name}]"

    def table(self, name: str) -> dict[str, Any]:
        """Return the table ``name`` ({} when absent).

        Raises:
            ConfigFileError: ``name`` is present but not a table.
        """
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigFileError(
                f"{self.path}: {self.table_name(name)} must be a table", path=self.path
            )
        return value


# Parsed files by path, with the (mtime, size) they were parsed at: opening a runtime
# looks the configuration up each time, and parsing a pyproject.toml costs far more
# than the stat that tells it has not changed. Callers only read ``ConfigFile.data``.
_parsed: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _read(path: Path) -> dict[str, Any]:
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        found = _parsed.get(path)
        if found is not None and found[0] == stamp:
            return found[1]
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"cannot read {path}: {exc}", path=path) from exc
    if len(_parsed) > 64:
        _parsed.clear()
    _parsed[path] = (stamp, data)
    return data


def find_config(start: str | Path | None = None) -> ConfigFile | None:
    """Return the nearest configuration at or above ``start`` (default: the cwd), or None.

    Raises:
        ConfigFileError: the nearest candidate is unreadable or not valid TOML, or its
            ``[tool.crucible]`` is not a table. A broken file is reported, never skipped:
            skipping it would silently pick up a file further up.
    """
    here = str(Path(start).resolve()) if start is not None else os.getcwd()
    # os.path, not pathlib, for the walk: open_runtime looks the configuration up each
    # time it opens, and the stats are most of what that costs.
    while True:
        if os.path.isfile(config := os.path.join(here, CONFIG_FILE)):
            return ConfigFile(Path(config), _read(Path(config)))
        if os.path.isfile(pyproject := os.path.join(here, PYPROJECT_FILE)):
            candidate = Path(pyproject)
            tool = _read(candidate).get("tool", {})
            section = tool.get("crucible") if isinstance(tool, dict) else None
            if section is None:
                pass
            elif not isinstance(section, dict):
                raise ConfigFileError(
                    f"{candidate}: [tool.crucible] must be a table", path=candidate
                )
            else:
                return ConfigFile(candidate, section, "tool.crucible.")
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
