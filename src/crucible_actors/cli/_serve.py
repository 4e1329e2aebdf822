"""``crucible-actors serve``: run the HTTP service and dashboard on Hypercorn.

Binds 127.0.0.1:8765 by default. Listening on any other address needs a token
(``--token-file``): without one the command refuses to start (exit 2), since anyone who
reaches the port could run experiments. The runtime is opened before the socket is
bound, on the store named by ``--store``, ``CRUCIBLE_STORE_URL`` or the embedded
``./.crucible/crucible.db``, and resumes the runs a dead process left running or a
stopped one interrupted, and keeps adopting the runs of processes that die while it is up
(``--no-adopt``: at start-up only). SIGINT or SIGTERM stop the server gracefully (a rolling restart,
``kill``, a container stop): runs still going are then stopped as fast as a cancel would
stop them, but recorded ``interrupted`` with their last checkpoint, and the next ``serve``
on the same store resumes them without re-running the stages they completed
(``--on-shutdown cancel`` records them ``cancelled`` instead, never to resume).

Hypercorn runs on trio by default (its trio worker); ``--backend asyncio`` uses its
asyncio worker. Needs ``pip install 'crucible-actors[serve]'``.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import anyio

from .._core import MissingDependency, ShutdownMode

if TYPE_CHECKING:
    import argparse

__all__ = ["hypercorn_config", "is_loopback", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser("serve", help="run the HTTP service and the run dashboard")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765, help="port (default: 8765; 0: any free)")
    p.add_argument(
        "--store",
        metavar="URL",
        help="store URL (default: CRUCIBLE_STORE_URL or sqlite:///./.crucible/crucible.db)",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help="file holding the API token; clients send Authorization: Bearer <token>",
    )
    p.add_argument(
        "--max-concurrent-runs",
        type=_positive,
        metavar="N",
        help="runs executing at once (default: no limit)",
    )
    p.add_argument(
        "--max-queue",
        type=_non_negative,
        default=100,
        metavar="N",
        help="submissions that may wait for admission before 429 (default: 100)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster for isolation='ray' stages (default: RAY_ADDRESS, else address "
        "in [ray] of crucible.toml or [tool.crucible.ray] of pyproject.toml, else a local "
        "Ray started on first use)",
    )
    p.add_argument(
        "--on-shutdown",
        choices=get_args(ShutdownMode),
        default="interrupt",
        help="what SIGINT/SIGTERM does to runs still going: interrupt (default; the next "
        "serve on the store resumes them) or cancel",
    )
    p.add_argument(
        "--no-adopt",
        dest="adopt",
        action="store_false",
        help="resume dead processes' runs at start-up only; by default the service keeps "
        "adopting, every 1.5 s, the runs of processes sharing the store that die while it "
        "is up",
    )
    p.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    p.add_argument(
        "--backlog",
        type=_positive,
        default=2048,
        metavar="N",
        help="connections the kernel queues before accepting (default: 2048; capped by "
        "net.core.somaxconn): a burst beyond it gets resets instead of 429 + Retry-After",
    )
    p.set_defaults(func=cmd_serve)


def _int(text: str, low: int, high: int, what: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _port(text: str) -> int:
    return _int(text, 0, 65535, "a port from 0 to 65535")


def _positive(text: str) -> int:
    return _int(text, 1, 1 << 30, "a positive integer")


def _non_negative(text: str) -> int:
    return _int(text, 0, 1 << 30, "an integer >= 0")


def is_loopback(host: str) -> bool:
    """Return whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_token(path: str) -> str | None:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the token file {path}: {exc}", file=sys.stderr)
        return None
    if not token or any(c.isspace() for c in token):
        print(f"error: the token file {path} must hold one token without spaces", file=sys.stderr)
        return None
    return token


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 2 on bad options or start-up."""
    token: str | None = None
    if args.token_file:
        token = _read_token(args.token_file)
        if token is None:
            return 2
    if token is None and not is_loopback(args.host):
        print(
            f"error: refusing to listen on {args.host} without a token: anyone who can reach "
            "it could run experiments. Pass --token-file PATH (clients then send "
            "'Authorization: Bearer <token>'), or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    try:
        import hypercorn  # noqa: F401

        from ..serve import create_app  # noqa: F401  (fails early without starlette)
    except ImportError as exc:
        raise MissingDependency(
            exc.name or "hypercorn", "crucible-actors serve", extra="serve"
        ) from exc
    from ..store import default_store_url

    url = args.store or default_store_url()
    try:
        anyio.run(partial(_serve, args, url, token), backend=args.backend)
    except (OSError, BaseExceptionGroup) as exc:
        found = _os_error(exc)
        if found is None:
            raise
        reason = found.strerror or str(found)
        print(f"error: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 2
    return 0


def _os_error(exc: BaseException) -> OSError | None:
    """Return the OSError in ``exc`` (maybe wrapped in exception groups), if any."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner)
            if found is not None:
                return found
    return None


async def _wait_for_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def hypercorn_config(args: argparse.Namespace, host: str) -> Any:
    """Return the Hypercorn ``Config`` for ``serve``'s options (``host`` bracketed if IPv6)."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{args.port}"]
    config.accesslog = None
    config.graceful_timeout = 5.0
    # Hypercorn's default backlog (100) resets a burst of connections before the app's
    # admission control can answer them 429 + Retry-After (issue 21).
    config.backlog = args.backlog
    return config


async def _serve(args: argparse.Namespace, url: str, token: str | None) -> None:

    from .._core import Registry, open_runtime
    from ..serve import create_app
    from ..store._sql import redact_url

    host = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    config = hypercorn_config(args, host)
    async with open_runtime(
        registry=Registry.default(),
        store=url,
        max_concurrent_runs=args.max_concurrent_runs,
        on_start="resume",
        adopt=args.adopt,
        ray_address=args.ray_address,
        on_shutdown=args.on_shutdown,
    ) as rt:
        failed = rt.recovery.failed if rt.recovery is not None else {}
        if failed:
            # Start anyway (issue 21): these runs stay as they are; /readyz lists them.
            shown = ", ".join(sorted(failed)[:10]) + (", ..." if len(failed) > 10 else "")
            print(
                f"crucible-actors serve: could not recover {len(failed)} run(s), left as they "
                f"are (see /readyz): {shown}",
                file=sys.stderr,
                flush=True,
            )
        # Starlette's ASGI types are looser than Hypercorn's; the app is plain ASGI 3.
        asgi: Any = create_app(rt, token=token, max_queue=args.max_queue)
        where = redact_url(url)

        async def stop_on_signal() -> None:
            await _wait_for_signal()
            # Open event streams end now, so the graceful close need not wait (and on
            # asyncio, cancel) them; the runtime then interrupts the runs still going.
            asgi.state.service.close_streams()

        def announce(binds: list[str]) -> None:
            for bind in binds:
                print(f"crucible-actors serve: {bind} (store: {where}, {args.backend})", flush=True)

        if args.backend == "trio":
            from hypercorn.trio import serve as trio_serve

            async with anyio.create_task_group() as tg:
                binds: Any = await tg.start(
                    partial(trio_serve, asgi, config, shutdown_trigger=stop_on_signal)
                )
                announce(list(binds))
        else:
            from hypercorn.asyncio import serve as asyncio_serve

            announce([f"http://{host}:{args.port}"])
            # In its own task: Hypercorn's asyncio TaskGroup cancels its parent task to
            # stop, and on Python 3.11 that cancellation can outlive the group; it must
            # not reach the task that closes the runtime.
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(asyncio_serve, asgi, config, shutdown_trigger=stop_on_signal))
