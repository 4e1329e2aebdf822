"""OTP-style supervision on anyio: supervisors, child specs and restart intensity.

A :class:`Supervisor` starts its children in order, restarts them by their
:class:`RestartType` and its :class:`Strategy`, gives up with
:class:`~crucible_actors.errors.RestartIntensityExceeded` after more than
``max_restarts`` restarts within ``max_seconds``, and stops them in reverse order with each
child's shutdown grace. It runs in the caller's event loop, on asyncio or trio, and is usable
on its own. :class:`RestartIntensity` is the pure sliding-window counter behind it, for
supervisors that drive restarts themselves.
"""

from .._core import RestartIntensity as RestartIntensity
from .._core import RestartStatistics as RestartStatistics
from .._core import RestartType as RestartType
from .._core import Strategy as Strategy
from ._supervisor import BRUTAL_KILL as BRUTAL_KILL
from ._supervisor import ChildSpec as ChildSpec
from ._supervisor import ChildState as ChildState
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorStatistics as SupervisorStatistics

__all__ = [
    "BRUTAL_KILL",
    "ChildSpec",
    "ChildState",
    "RestartIntensity",
    "RestartStatistics",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorStatistics",
]
