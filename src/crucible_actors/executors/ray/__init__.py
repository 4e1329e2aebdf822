"""``isolation="ray"``: attempts run as Ray tasks, or on Ray actors for stateful stages.

The only module of crucible-actors that imports ``ray`` (extra ``ray``), and only once a
run with a ray stage is submitted. Each runtime has its own :class:`RayExecutor`; where
the cluster is comes from ``open_runtime(ray_address=...)``, else ``RAY_ADDRESS``, else
``address`` in the project configuration (``[ray]`` in ``crucible.toml``, or
``[tool.crucible.ray]`` in ``pyproject.toml``, the nearest at or above the working
directory, as for stages: see :func:`ray_address`); with none of them a local Ray is
started on first use (``include_dashboard=False``, workers get the driver's ``sys.path``)
and shut down when the runtime closes. A Ray the program had already initialised is
used as it is and left running.

What crosses: the stage object is shipped once per stage the way Ray ships functions
(cloudpickle: a function or class from an importable module goes by reference, so the
module must be importable on the workers; give ``runtime_env={"working_dir": ...}`` or
``{"py_modules": [...]}`` to :class:`RayExecutor` for a remote cluster), the options as
plain data, and each attempt's Context as the same msgpack bytes as everywhere else.

- A stage without ``setup()`` runs each attempt as a task (``max_retries=0``: retries are
  the supervisor's, by policy) with ``StageDef.resources`` as its request.
- A stage class with ``setup()`` runs on a pool of ``StageDef.pool`` actors created on
  first use with those resources; each calls ``setup()`` before its first attempt and
  ``teardown()`` when the runtime closes; Ray restarts an actor whose process dies
  (``max_restarts``), and it sets up again.
- Large values (blobs; see the data guide): the snapshot carries
  references; each blob an attempt needs is ``ray.put`` once per runtime (the executor
  keeps digest -> ObjectRef) and handed to the task or actor call as an argument, so Ray
  ships it to a node once and the worker unpickles arrays over the object store's shared
  memory: zero-copy and read-only. Large values of the result come back beside the reply
  and the driver writes them to the run's blob store.
- A timeout or a cancel calls ``ray.cancel(ref, force=True)`` on a task, or kills the
  actor (a new one replaces it); a worker, actor or node lost mid-attempt fails the
  attempt with :class:`~crucible_actors.errors.WorkerCrashed`, which restart policies
  match by name.

The package: ``_config`` (where the cluster is, what a stage asks for),
``_worker`` (what runs on the Ray workers) and ``_executor`` (the driver's side).
"""

from __future__ import annotations

from ._config import ray_address as ray_address
from ._config import ray_request as ray_request
from ._executor import RayExecutor as RayExecutor

__all__ = ["RayExecutor", "ray_address", "ray_request"]
