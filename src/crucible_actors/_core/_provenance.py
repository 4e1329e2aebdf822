"""Provenance: what produced a run, recorded with it when it starts.

Two parts, stored differently so that a run costs a few hundred bytes:

- the **environment**, shared by every run of a process with the same stages' packages:
  ``python`` (version), ``crucible_actors`` (version), ``platform``, ``host``,
  ``packages`` (distribution name -> version: the installed distributions the stages'
  modules come from, plus ``crucible-actors`` and those of numpy, pandas, pyarrow,
  scipy, scikit-learn and torch when imported) and ``git`` (``commit``, ``dirty``) of
  the work tree holding the stages' own source files (the first stage defined outside
  installed packages; else the current directory), absent outside a git work tree. It
  is stored once by content as an
  :class:`~crucible_actors._core.persistence._store.EnvironmentRecord` whose id is the digest of
  its JSON (:func:`~crucible_actors._core.persistence._blobs.digest_of`);
- the **definition**: the experiment definition the run executes, as the experiment
  record stores it (``ExperimentRecord.definition``), stored once by content as a
  :class:`~crucible_actors._core.persistence._store.DefinitionRecord` whose id is
  :func:`definition_id`. The experiment record is overwritten each time its id is
  submitted again, so it is only the *latest* definition; a run's own options
  (``params.*`` columns, ``runs diff``) are read from its definition record
  (:func:`load_definitions`), and from the experiment record only for runs recorded
  without one;
- per run, ``RunRecord.provenance``: ``{"environment": id, "definition": id, "stages":
  {label: code fingerprint}, "inputs": {key: digest}}``. Fingerprints are
  :func:`~crucible_actors._core._fingerprint.code_fingerprint` (the one the result
  cache keys on); ``inputs`` holds the blob digest of each large value of the run's
  initial Context (``assigns['X']``: the values stored by content, see ``_data.py``),
  left out when there is none.

Each environment is computed once per process (in a worker thread: ``git rev-parse
HEAD`` and ``git status --porcelain`` run as subprocesses, each bounded by
:data:`GIT_TIMEOUT` seconds) and written once per store; a definition's digest is
computed once per definition object and the record written once per store. Anything
that goes wrong (no git, a package without metadata, a store without
``put_environment`` or ``put_definition``) leaves that part out; provenance never
fails a run.

:func:`provenance_view` joins the two parts into the JSON shape ``runs show --json``
and ``GET /api/runs/{id}`` return.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread
import msgspec

from ._fingerprint import code_fingerprint, code_target
from ._invoke import resolve_stage
from ._memo import IdentityMemo
from ._payload import EXT_BLOB, ref_decode
from .persistence._blobs import digest_of
from .persistence._records import checkpoint_definition
from .persistence._store import DefinitionRecord, EnvironmentRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from datetime import datetime

    from ._ir import Experiment
    from ._registry import Registry

__all__ = [
    "ENVIRONMENT_FIELDS",
    "EXTRA_MODULES",
    "GIT_TIMEOUT",
    "ProvenanceRecorder",
    "definition_id",
    "environment_of",
    "git_state",
    "input_digests",
    "load_definitions",
    "load_provenance",
    "provenance_diff",
    "provenance_view",
    "provenance_warnings",
]

log = logging.getLogger("crucible_actors.provenance")

#: Import names whose distributions are recorded whenever they are imported.
EXTRA_MODULES: Final = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "torch")
#: Seconds each git command may take before the git part is left out.
GIT_TIMEOUT: Final = 2.0

# Import names whose distribution is named otherwise (checked before a metadata scan).
_KNOWN_DISTRIBUTIONS: Final = {"sklearn": "scikit-learn", "crucible_actors": "crucible-actors"}

_SITE_DIRS: Final = ("site-packages", "dist-packages")

# Process-wide: environments by key, git by directory, module -> distribution names.
_environments: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
_git: dict[str, dict[str, Any] | None] = {}
_dists_of: dict[str, list[str]] = {}
_scanned: Mapping[str, list[str]] | None = None

_json = msgspec.json.Encoder(order="sorted")
_raw_map = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])


# -- the environment ------------------------------------------------------------------


def _installed(module: Any) -> bool:
    path = getattr(module, "__file__", None) or ""
    return any(part in _SITE_DIRS for part in path.split(os.sep))


def _distributions(top: str) -> list[str]:
    """The distributions that provide import name ``top`` (may scan metadata once)."""
    global _scanned
    hit = _dists_of.get(top)
    if hit is not None:
        return hit
    name = _KNOWN_DISTRIBUTIONS.get(top, top)
    try:
        importlib.metadata.distribution(name)
        found = [name]
    except importlib.metadata.PackageNotFoundError:
        found = []
        if _installed(sys.modules.get(top)):
            # The import name is not the distribution's: scan every distribution's
            # file list, once per process (a few hundred ms in a large environment).
            scanned = _scanned
            if scanned is None:
                scanned = _scanned = importlib.metadata.packages_distributions()
            found = list(scanned.get(top, ()))
    _dists_of[top] = found
    return found


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _run_git(directory: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(directory: str) -> dict[str, Any] | None:
    """Return ``{"commit", "dirty"}`` of the git work tree holding ``directory``, or None.

    ``dirty``: a tracked file differs from the commit (untracked files do not count).
    None outside a work tree, without git, or when a command takes over
    :data:`GIT_TIMEOUT` seconds. Cached per directory for the process.
    """
    if directory in _git:
        return _git[directory]
    state: dict[str, Any] | None = None
    commit = _run_git(directory, "rev-parse", "--verify", "-q", "HEAD")
    if commit:
        status = _run_git(directory, "status", "--porcelain", "--untracked-files=no")
        if status is not None:
            state = {"commit": commit.strip(), "dirty": bool(status.strip())}
    _git[directory] = state
    return state


def _crucible_version() -> str | None:
    version = getattr(sys.modules.get("crucible_actors"), "__version__", None)
    return version if isinstance(version, str) else _version("crucible-actors")


def _build(key: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    """Compute the environment ``key`` names (IO: metadata, git); sync, for a thread."""
    git_dir, tops = key
    packages: dict[str, str] = {}
    for top in ("crucible_actors", *tops):
        for dist in _distributions(top):
            version = _version(dist)
            if version is not None:
                packages[dist] = version
    record: dict[str, Any] = {
        "python": platform.python_version(),
        "crucible_actors": _crucible_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": dict(sorted(packages.items())),
        "git": git_state(git_dir) if git_dir else None,
    }
    return digest_of([_json.encode(record)]), record


def _environment_key(targets: Iterable[Any]) -> tuple[Any, ...]:
    """The key of the environment of stages whose code is ``targets`` (cheap)."""
    tops: set[str] = set()
    git_dir: str | None = None
    for target in targets:
        module_name = getattr(target, "__module__", None) or ""
        top = module_name.partition(".")[0]
        if not top or top == "crucible_actors":
            continue
        module = sys.modules.get(module_name)
        if _installed(module):
            tops.add(top)
        elif git_dir is None and top != "__main__":
            path = getattr(module, "__file__", None)
            if path:
                git_dir = os.path.dirname(os.path.abspath(path))
    tops.update(m for m in EXTRA_MODULES if m in sys.modules)
    return (git_dir or os.getcwd(), tuple(sorted(tops)))


async def environment_of(targets: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """Return ``(id, record)`` of the environment of stages whose code is ``targets``.

    Computed once per process per distinct key, in a worker thread.
    """
    key = _environment_key(targets)
    hit = _environments.get(key)
    if hit is None:
        hit = await anyio.to_thread.run_sync(_build, key)
        _environments[key] = hit
    return hit


# -- the run's part -------------------------------------------------------------------


def input_digests(snapshot: bytes) -> dict[str, str]:
    """Return ``assigns['X']`` -> blob digest for each large value of a Context snapshot."""
    fields = _raw_map.decode(snapshot)
    assigns = fields.get("assigns")
    if assigns is None:
        return {}
    found: dict[str, str] = {}
    for key, raw in _raw_map.decode(assigns).items():
        data = bytes(raw)
        # A value stored by content is a msgpack ext (fixext/ext8/16/32) of type EXT_BLOB.
        if data[:1] not in (b"\xc7", b"\xc8", b"\xc9", b"\xd4", b"\xd5", b"\xd6", b"\xd7", b"\xd8"):
            continue
        value = msgspec.msgpack.decode(
            data, ext_hook=lambda code, payload: ref_decode(payload) if code == EXT_BLOB else None
        )
        digest = getattr(value, "digest", None)
        if isinstance(digest, str):
            found[f"assigns[{key!r}]"] = digest
    return found


def definition_id(definition: Mapping[str, Any]) -> str:
    """Return the id of a stored definition: the digest of its JSON with sorted keys."""
    return digest_of([_json.encode(definition)])


# Definition ids a recorder remembers as written before it starts over (a long-lived
# process running many sweeps would otherwise keep one per point forever).
_MAX_WRITTEN: Final = 100_000


class ProvenanceRecorder:
    """Records provenance for the runs of one persistence (one store).

    ``registry`` resolves stage names (as the run will); ``now`` stamps environment
    records. Remembers the environments and definitions already written to its store
    (the definitions' ids up to :data:`_MAX_WRITTEN`, then forgotten: writing one again
    is a no-op insert).
    """

    __slots__ = (
        "_def_ids",
        "_defs_written",
        "_lock",
        "_plans",
        "_written",
        "now",
        "registry",
        "store",
    )

    def __init__(self, store: Any, registry: Registry, now: Callable[[], datetime]) -> None:
        self.store = store
        self.registry = registry
        self.now = now
        #: Environment ids, and definition ids, already in the store.
        self._written: set[str] = set()
        self._defs_written: set[str] = set()
        self._def_ids: IdentityMemo[Mapping[str, Any], str] = IdentityMemo()
        self._plans: IdentityMemo[Experiment, tuple[dict[str, str], list[Any]]] = IdentityMemo()
        self._lock = anyio.Lock()

    def _plan(self, experiment: Experiment) -> tuple[dict[str, str], list[Any]]:
        """The stages' fingerprints and code targets, made once per Experiment object."""
        return self._plans.get(experiment, self._make_plan)

    def _make_plan(self, experiment: Experiment) -> tuple[dict[str, str], list[Any]]:
        stages: dict[str, str] = {}
        targets: list[Any] = []
        for sd in experiment.pipeline:
            if not sd.enabled:
                continue
            try:
                stage_obj = resolve_stage(sd, self.registry)
            except Exception:  # the run reports an unresolvable stage itself
                continue
            stages[sd.label] = code_fingerprint(stage_obj)
            targets.append(code_target(stage_obj))
        return stages, targets

    def _definition_id(self, definition: Mapping[str, Any]) -> str:
        """:func:`definition_id`, computed once per definition object."""
        return self._def_ids.get(definition, definition_id)

    async def for_run(
        self,
        experiment: Experiment,
        snapshot: bytes,
        definition: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Return the run's provenance record, storing its environment and definition
        first if new.

        ``definition`` is the run's experiment as the experiment record stores it
        (``ExperimentRecord.definition``); without it, or with a store that has no
        ``put_definition``, the record has no ``definition``. None (logged) if it could
        not be made; never raises Exception.
        """
        try:
            stages, targets = self._plan(experiment)
            env_id, record = await environment_of(targets)
            if env_id not in self._written:
                await self._store_environment(env_id, record)
            out: dict[str, Any] = {"environment": env_id}
            if definition is not None and hasattr(self.store, "put_definition"):
                def_id = self._definition_id(definition)
                if def_id not in self._defs_written:
                    await self._store_definition(def_id, definition)
                out["definition"] = def_id
            out["stages"] = stages
            inputs = input_digests(snapshot)
            if inputs:
                out["inputs"] = inputs
            return out
        except Exception as exc:
            log.warning("provenance not recorded for a run of %r: %s", experiment.id, exc)
            return None

    async def _store_environment(self, env_id: str, record: dict[str, Any]) -> None:
        put = getattr(self.store, "put_environment", None)
        if put is None:
            return
        async with self._lock:
            if env_id in self._written:
                return
            try:
                await put(EnvironmentRecord(id=env_id, record=record, created_at=self.now()))
            except Exception as exc:  # the run goes on; the next one tries again
                log.warning("could not store the run environment %s: %s", env_id, exc)
                return
            self._written.add(env_id)

    async def _store_definition(self, def_id: str, definition: Mapping[str, Any]) -> None:
        async with self._lock:
            if def_id in self._defs_written:
                return
            record = DefinitionRecord(id=def_id, definition=dict(definition), created_at=self.now())
            try:
                await self.store.put_definition(record)
            except Exception as exc:  # readers fall back to the experiment record
                log.warning("could not store the run definition %s: %s", def_id, exc)
                return
            if len(self._defs_written) >= _MAX_WRITTEN:
                self._defs_written.clear()
            self._defs_written.add(def_id)


# -- reading it back ------------------------------------------------------------------


async def load_definitions(
    store: Any, runs: Sequence[Any], *, checkpoints: bool = False
) -> list[dict[str, Any] | None]:
    """Return the experiment definition each of ``runs`` (RunRecords) executed.

    A run's own definition is the one its provenance names (``definition``), read with
    one ``get_definitions`` call for all the distinct ids; a run without one (recorded
    before definitions were stored, with provenance off, or by a store without
    ``put_definition``) or whose definition is missing gets its experiment's stored
    definition, the latest submitted under that id (one ``get_experiment`` per distinct
    experiment). With ``checkpoints``, such a run's latest checkpoint is decoded first
    (:func:`~._records.checkpoint_definition`: right for older runs too, but one
    checkpoint read per run, so for a few runs only). None when nothing is stored.
    """
    ids: dict[str, None] = {}
    for run in runs:
        def_id = (run.provenance or {}).get("definition")
        if isinstance(def_id, str):
            ids[def_id] = None
    get = getattr(store, "get_definitions", None)
    found: Mapping[str, DefinitionRecord] = await get(list(ids)) if ids and get else {}
    latest: dict[str, dict[str, Any] | None] = {}
    out: list[dict[str, Any] | None] = []
    for run in runs:
        def_id = (run.provenance or {}).get("definition")
        own = found.get(def_id) if isinstance(def_id, str) else None
        if own is not None:
            out.append(own.definition)
            continue
        if checkpoints:
            checkpoint = await store.load_checkpoint(run.id)
            decoded = checkpoint_definition(checkpoint.data) if checkpoint is not None else None
            if decoded is not None:
                out.append(decoded)
                continue
        exp_id = run.experiment_id
        if exp_id not in latest:
            stored = await store.get_experiment(exp_id)
            latest[exp_id] = stored.definition if stored is not None else None
        out.append(latest[exp_id])
    return out


def provenance_view(
    provenance: Mapping[str, Any] | None, environment: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Join a run's provenance and its environment record into the documented shape.

    ``{"environment", "definition", "python", "crucible_actors", "platform", "host",
    "packages", "git", "stages", "inputs"}`` (``definition``: the id of the run's stored
    definition, None when not recorded); an environment that is not stored leaves its fields
    None (``packages`` empty). None when the run has no provenance.
    """
    if provenance is None:
        return None
    env = environment or {}
    return {
        "environment": provenance.get("environment"),
        "definition": provenance.get("definition"),
        "python": env.get("python"),
        "crucible_actors": env.get("crucible_actors"),
        "platform": env.get("platform"),
        "host": env.get("host"),
        "packages": dict(env.get("packages") or {}),
        "git": env.get("git"),
        "stages": dict(provenance.get("stages") or {}),
        "inputs": dict(provenance.get("inputs") or {}),
    }


async def load_provenance(
    store: Any, provenance: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Return :func:`provenance_view` of a run's provenance, reading its environment."""
    if provenance is None:
        return None
    env_id = provenance.get("environment")
    get = getattr(store, "get_environment", None)
    env = await get(env_id) if get is not None and isinstance(env_id, str) else None
    return provenance_view(provenance, env.record if env is not None else None)


# -- differences ----------------------------------------------------------------------

#: The environment fields :func:`provenance_diff` compares, besides ``packages``.
ENVIRONMENT_FIELDS: Final = ("python", "crucible_actors", "platform", "host")


def _pairs(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted({*a, *b}) if a.get(k) != b.get(k)]


def provenance_diff(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> dict[str, list[tuple[str, Any, Any]]]:
    """Return what differs between two provenance views, as ``(key, a, b)`` per part.

    Parts: ``code`` (stage label -> fingerprint), ``environment`` (python,
    crucible_actors, platform, host, ``git.commit``, ``git.dirty``), ``packages`` (name
    -> version) and ``inputs`` (key -> digest); a value a run does not have is None. A
    run without provenance differs in nothing (it cannot say).
    """
    out: dict[str, list[tuple[str, Any, Any]]] = {
        "code": [],
        "environment": [],
        "packages": [],
        "inputs": [],
    }
    if a is None or b is None:
        return out
    out["code"] = _pairs(a.get("stages") or {}, b.get("stages") or {})
    env_a = {f: a.get(f) for f in ENVIRONMENT_FIELDS}
    env_b = {f: b.get(f) for f in ENVIRONMENT_FIELDS}
    for side, env in ((a, env_a), (b, env_b)):
        git = side.get("git") or {}
        env["git.commit"] = git.get("commit")
        env["git.dirty"] = git.get("dirty")
    out["environment"] = _pairs(env_a, env_b)
    out["packages"] = _pairs(a.get("packages") or {}, b.get("packages") or {})
    out["inputs"] = _pairs(a.get("inputs") or {}, b.get("inputs") or {})
    return out


def provenance_warnings(views: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Return one line per way the runs ``views`` (run id -> view) differ, else ``[]``.

    Each line names the differing parts against the first run with provenance, e.g.
    ``runs differ from run-a in code: stage 'cv_eval' (run-b)`` (at most three run ids
    per item, then ``+N more``); runs without provenance are left out. The wording is
    for people; scripts read :func:`provenance_diff`.
    """
    known = [(rid, v) for rid, v in views.items() if v is not None]
    if len(known) < 2:
        return []
    base_id, base = known[0]
    # line -> item text -> run ids; packages share the environment's line.
    where = {"code": "code", "environment": "environment", "packages": "environment"}
    where["inputs"] = "input data"
    noun = {"code": "stage ", "environment": "", "packages": "package ", "inputs": ""}
    found: dict[str, dict[str, list[str]]] = {"code": {}, "environment": {}, "input data": {}}
    for rid, view in known[1:]:
        for part, rows in provenance_diff(base, view).items():
            for key, _, _ in rows:
                found[where[part]].setdefault(f"{noun[part]}{key!r}", []).append(rid)
    lines: list[str] = []
    for what, items in found.items():
        if items:
            text = ", ".join(f"{item} ({_some(rids)})" for item, rids in items.items())
            lines.append(f"runs differ from {base_id} in {what}: {text}")
    return lines


def _some(ids: list[str], most: int = 3) -> str:
    more = f", +{len(ids) - most} more" if len(ids) > most else ""
    return ", ".join(ids[:most]) + more
