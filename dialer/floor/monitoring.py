"""Listen, whisper and barge: a supervisor on a call in progress, every use audited.

- ``listen``: the supervisor hears the operator and the far end; nobody hears the supervisor;
- ``whisper``: the operator hears the supervisor too, the far end does not (coaching);
- ``barge``: everyone hears the supervisor (and the recording keeps it: the customer heard it).

The audio itself is the call service's (:mod:`dialer.telephony.monitor_hub`). Here are the use
cases: :func:`start_monitoring` (who may, then the audit row ``monitor.listen`` /
``monitor.whisper`` / ``monitor.barge`` with target ``call:<id>``) and
:func:`change_monitor_mode` (a switch is audited the same way). Like every use case they take
the caller's database session; the caller commits.

:class:`MonitorDesk` holds a monitor between the moment it is granted (``POST
/api/calls/{id}/monitor``) and the moment the supervisor's audio socket claims it by its id; one
never claimed is let go after ``claim_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.calls import get_call
from dialer.errors import NotFound, PermissionDenied, ValidationFailed
from dialer.telephony.monitor_hub import CallMonitor, MonitorMode, is_monitor_mode

logger = logging.getLogger(__name__)

DEFAULT_CLAIM_SECONDS = 30.0


@runtime_checkable
class MonitorableCalls(Protocol):
    """What monitoring needs of the call service (``dialer.telephony.CallService`` fits)."""

    async def monitor_call(self, actor: Actor, call_id: int, mode: MonitorMode) -> CallMonitor:
        """Join a call in progress (``NotFound``, ``PermissionDenied``, ``Conflict``)."""
        ...


def audit_action(mode: MonitorMode) -> str:
    return f"monitor.{mode}"


def check_mode(value: object) -> MonitorMode:
    """``value`` as a mode, or ``ValidationFailed`` on ``mode``."""
    if not is_monitor_mode(value):
        raise ValidationFailed("mode", "use listen, whisper or barge")
    return value  # type: ignore[return-value]  # checked by is_monitor_mode


def _check_staff(actor: Actor) -> None:
    if not (actor.is_admin or actor.is_supervisor):
        raise PermissionDenied("only supervisors and admins monitor calls")


async def start_monitoring(
    session: AsyncSession,
    calls: MonitorableCalls,
    actor: Actor,
    call_id: int,
    mode: MonitorMode,
) -> CallMonitor:
    """Join call ``call_id`` in ``mode`` and audit it (the caller commits).

    ``PermissionDenied`` for operators (and for a supervisor's own call), ``NotFound`` for a
    call the actor may not see, ``Conflict`` for a call that is not in progress."""
    _check_staff(actor)
    mode = check_mode(mode)
    call = await get_call(session, actor, call_id)  # NotFound when not visible
    operator_id = call.operator_id
    # End this read before the call service opens its own transactions (SQLite's one writer).
    await session.rollback()
    monitor = await calls.monitor_call(actor, call_id, mode)
    try:
        await append_audit_event(
            session,
            actor,
            audit_action(mode),
            f"call:{call_id}",
            {"monitor_id": monitor.monitor_id, "operator_id": operator_id},
        )
    except BaseException:
        monitor.detach()
        raise
    return monitor


async def change_monitor_mode(
    session: AsyncSession, actor: Actor, monitor: CallMonitor, mode: MonitorMode
) -> bool:
    """Switch ``monitor`` to ``mode`` and audit it (the caller commits); False if unchanged."""
    _check_staff(actor)
    mode = check_mode(mode)
    if monitor.user_id != actor.user_id:
        raise PermissionDenied("this is another supervisor's monitor")
    if monitor.mode == mode:
        return False
    previous = monitor.mode
    await append_audit_event(
        session,
        actor,
        audit_action(mode),
        f"call:{monitor.call_id}",
        {
            "monitor_id": monitor.monitor_id,
            "operator_id": monitor.operator_id,
            "switched_from": previous,
        },
    )
    monitor.mode = mode
    return True


class MonitorDesk:
    """Monitors granted but not yet claimed by the supervisor's audio socket."""

    def __init__(self, calls: MonitorableCalls, *, claim_seconds: float = DEFAULT_CLAIM_SECONDS):
        self.calls = calls
        self.claim_seconds = claim_seconds
        self._waiting: dict[str, tuple[CallMonitor, asyncio.TimerHandle]] = {}

    async def grant(
        self, session: AsyncSession, actor: Actor, call_id: int, mode: MonitorMode
    ) -> CallMonitor:
        """:func:`start_monitoring`, then hold the monitor until it is claimed."""
        monitor = await start_monitoring(session, self.calls, actor, call_id, mode)
        timer = asyncio.get_running_loop().call_later(
            self.claim_seconds, self._expire, monitor.monitor_id
        )
        self._waiting[monitor.monitor_id] = (monitor, timer)
        return monitor

    def claim(self, actor: Actor, call_id: int, monitor_id: str) -> CallMonitor:
        """The granted monitor ``monitor_id`` of ``actor`` on ``call_id`` (``NotFound``)."""
        held = self._waiting.get(monitor_id)
        if held is None:
            raise NotFound(f"monitor {monitor_id}")
        monitor, timer = held
        if monitor.user_id != actor.user_id or monitor.call_id != call_id:
            raise NotFound(f"monitor {monitor_id}")
        del self._waiting[monitor_id]
        timer.cancel()
        if monitor.detached:
            raise NotFound(f"monitor {monitor_id} (the call is over)")
        return monitor

    def close(self) -> None:
        """Let every unclaimed monitor go."""
        for monitor_id in list(self._waiting):
            self._expire(monitor_id)

    def _expire(self, monitor_id: str) -> None:
        held = self._waiting.pop(monitor_id, None)
        if held is None:
            return
        monitor, timer = held
        timer.cancel()
        logger.info("monitor %s on call %d was never claimed", monitor_id, monitor.call_id)
        monitor.detach()
