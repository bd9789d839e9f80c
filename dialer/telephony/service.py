"""The call service: ``dialer.call_control.CallControl`` on our SIP stack.

::

    service = await CallService.start(settings, session_factory, event_bus)
    live = await service.place_call(actor, CallRequest(contact_id=7))
    bridge = await service.attach_browser_audio(actor, live.call_id)
    ...
    await service.close()

``place_call`` resolves the number, refuses do-not-call numbers, creates and commits the call
row, then a background task drives the SIP call. Every transition (dialing, ringing, answered,
ended / failed) is written to the row and committed, THEN published on the event bus as
``call.<state>`` (``call.ended`` also for failed calls) to the operator, the supervisors of the
operator's team and the admins; ``operator.state`` (dialing, ringing, talking, wrap-up) goes
to the same audience. Both payloads name the contact (``contact_id``, ``contact_name``) for
the supervisors' wallboard (:mod:`dialer.floor`). Each service owns its transactions (a session
per step, from the session factory it was given). Transitions are group-committed: those that
wait for their turn to write together (SIP events of one call that arrived meanwhile, other
calls' transitions) go into one transaction, one fsync on SQLite, and are published after it,
each call's in order.

Audio legs: the browser (:mod:`dialer.telephony.bridge`; the call is hung up with cause
``browser_disconnected`` when no browser is attached for ``browser_grace_seconds``) or the
operator's own phone (:mod:`dialer.telephony.phone_leg`). Every call's audio passes through a
:class:`~dialer.telephony.monitor_hub.CallMonitorHub` where supervisors listen, whisper or barge
(:meth:`CallService.monitor_call`). Recording (per account, on by default) is
:mod:`dialer.telephony.recording`; start-up recovery is :mod:`dialer.telephony.recovery`.

SIP hold: the ``sip.phone`` API has no re-INVITE hold yet, so ``set_held`` stops sending media
to the far end (and says so in the log); the far end hears silence, not a hold tone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import and_, false, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dialer.actors import Actor
from dialer.call_control import AudioLeg, CallRequest, LiveCall
from dialer.calls import create_call, get_call, record_call_transition
from dialer.contacts import (
    ContactInput,
    PhoneInput,
    create_contact,
    find_contacts_by_phone,
    get_contact,
)
from dialer.errors import Conflict, DialerError, NotFound, PermissionDenied, ValidationFailed
from dialer.live_events import EventBus
from dialer.models import CallState, Contact, ContactPhone, HangupParty, User, utc_now
from dialer.phones import normalise_phone
from dialer.settings import Settings
from dialer.telephony.accounts import (
    AccountChoice,
    CallingAccount,
    accounts_file_from_environment,
    load_account_choice,
    start_test_line,
)
from dialer.telephony.bridge import CallAudioBridge, FarEndRelay, OperatorFramePacer
from dialer.telephony.monitor_hub import CallMonitor, CallMonitorHub, MonitorMode
from dialer.telephony.phone_leg import PhoneLegBridge
from dialer.telephony.recording import CallRecording, RecordingStore
from dialer.telephony.recovery import RecoveryReport, recover
from recordings.compression import Codec
from recordings.wav_writer import RecordingWriter
from sip.causes import CallCause
from sip.errors import DialPlanError, MediaError, SipError, StreamClosedError
from sip.events import CallAnswered, CallEnded, CallProgress
from sip.phone import Call, CallEvent, Phone, PhoneConfig
from sip.testline import TestLine

logger = logging.getLogger(__name__)

# A transition a locked database refused is tried again after this long, then twice as long
# each time up to the longest (and in every write turn meanwhile).
UNRECORDED_RETRY_FIRST_SECONDS = 0.5
UNRECORDED_RETRY_LONGEST_SECONDS = 10.0
DEFAULT_BROWSER_GRACE_SECONDS = 30.0
DEFAULT_CLOSE_TIMEOUT_SECONDS = 30.0
BROWSER_DISCONNECTED = "browser_disconnected"
OPERATOR_LEG_PREFIX = "operator_"
_DTMF_PATTERN = re.compile(r"^[0-9*#A-Da-d]{1,32}$")

OperatorState = Literal["idle", "dialing", "ringing", "talking", "wrap-up"]
_OPERATOR_STATE_OF: dict[CallState, OperatorState] = {
    CallState.CREATED: "dialing",
    CallState.DIALING: "dialing",
    CallState.RINGING: "ringing",
    CallState.ANSWERED: "talking",
    CallState.ENDED: "wrap-up",
    CallState.FAILED: "wrap-up",
    CallState.INTERRUPTED: "wrap-up",
}
_EVENT_KIND_OF: dict[CallState, str] = {
    CallState.CREATED: "call.created",
    CallState.DIALING: "call.dialing",
    CallState.RINGING: "call.ringing",
    CallState.ANSWERED: "call.answered",
    CallState.ENDED: "call.ended",
    CallState.FAILED: "call.ended",
    CallState.INTERRUPTED: "call.ended",
}
_HANGUP_PARTY_OF: dict[str, HangupParty] = {
    "local": HangupParty.OPERATOR,
    "remote": HangupParty.REMOTE,
    "system": HangupParty.SYSTEM,
}


@dataclass
class _LiveCall:
    """A call this service is driving (from the row's creation to its last transition)."""

    call_id: int
    operator_id: int
    operator_team_id: int | None
    contact_id: int | None
    number: str
    audio_leg: AudioLeg
    calling: CallingAccount
    audience: tuple[int, ...]
    created_at: datetime
    operator_phone: str | None = None
    contact_name: str | None = None
    monitor_hub: CallMonitorHub | None = None
    state: CallState = CallState.CREATED
    muted: bool = False
    held: bool = False
    sip_call: Call | None = None
    operator_call: Call | None = None
    pacer: OperatorFramePacer | None = None
    phone_bridge: PhoneLegBridge | None = None
    bridge: CallAudioBridge | None = None
    recording: CallRecording | None = None
    grace_timer: asyncio.TimerHandle | None = None
    hangup_requested: bool = False
    end_cause: str | None = None
    hangup_by: HangupParty | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> LiveCall:
        return LiveCall(
            call_id=self.call_id,
            operator_id=self.operator_id,
            contact_id=self.contact_id,
            number=self.number,
            state=self.state.value,
            muted=self.muted,
            held=self.held,
        )


@dataclass(frozen=True, slots=True)
class _Transition:
    """One state change of a call's row, as written and published."""

    state: CallState
    at: datetime
    cause: str | None = None
    sip_code: int | None = None
    reason: str | None = None
    hangup_by: HangupParty | None = None
    sip_call_id: str | None = None
    record_code: bool = True  # False: the SIP code and reason are published, not written


@dataclass(frozen=True, slots=True)
class _QueuedWrite:
    """A call's transitions waiting for a turn to be written (made by ``collect`` then)."""

    live: _LiveCall
    collect: Callable[[], list[_Transition]]
    written: asyncio.Future[list[_Transition]]


def _transition_of(
    live: _LiveCall, call: Call, state: CallState, event: CallEvent, received_at: float
) -> _Transition | None:
    """The transition a SIP event makes from ``state`` (None: none, e.g. a second ringing)."""
    if isinstance(event, CallProgress):
        if state not in (CallState.CREATED, CallState.DIALING):
            return None
        ringing_at = min(received_at, call.answered_at or received_at)
        return _Transition(
            CallState.RINGING,
            _wall_clock(call, ringing_at),
            sip_code=event.status_code,
            reason=event.reason,
            record_code=False,
        )
    if isinstance(event, CallAnswered):
        at = _wall_clock(call, call.answered_at or received_at)
        return _Transition(CallState.ANSWERED, at, sip_code=200, reason="OK")
    if isinstance(event, CallEnded):
        answered = call.answered_at is not None
        return _Transition(
            CallState.ENDED if answered else CallState.FAILED,
            _wall_clock(call, call.ended_at or received_at),
            cause=live.end_cause or event.cause.value,
            sip_code=event.status_code or None,
            reason=event.reason or None,
            hangup_by=live.hangup_by or _HANGUP_PARTY_OF[event.hung_up_by],
        )
    return None


class CallService:
    """Places and controls calls over SIP; implements ``dialer.call_control.CallControl``.

    Build it with :meth:`start`. The constructor takes ready parts (a running ``Phone``);
    ``owned_phone`` / ``owned_test_line`` are closed by :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        event_bus: EventBus,
        phone: Phone,
        accounts: AccountChoice,
        *,
        recordings_root: Path | None = None,
        browser_grace_seconds: float = DEFAULT_BROWSER_GRACE_SECONDS,
        recording_codec: Codec = "opus",
        recording_bitrate_kbps: int | None = None,
        compression_threads: int = 1,
        close_timeout_seconds: float = DEFAULT_CLOSE_TIMEOUT_SECONDS,
        owned_phone: bool = False,
        owned_test_line: TestLine | None = None,
    ) -> None:
        if browser_grace_seconds < 0:
            raise ValueError("browser_grace_seconds must not be negative")
        self.settings = settings
        self.phone = phone
        self.accounts = accounts
        self.browser_grace_seconds = browser_grace_seconds
        self.close_timeout_seconds = close_timeout_seconds
        self.test_line = owned_test_line
        self.recovery_report: RecoveryReport | None = None
        self._session_factory = session_factory
        self._event_bus = event_bus
        self._owned_phone = owned_phone
        self._writer = RecordingWriter(threads=2)
        self._executor = ThreadPoolExecutor(
            max_workers=compression_threads, thread_name_prefix="recording-compression"
        )
        self.recordings = RecordingStore(
            recordings_root if recordings_root is not None else settings.recordings_dir,
            self._writer,
            self._executor,
            session_factory,
            codec=recording_codec,
            bitrate_kbps=recording_bitrate_kbps,
        )
        self._live_by_id: dict[int, _LiveCall] = {}
        self._live_by_operator: dict[int, _LiveCall] = {}
        self._operator_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # SQLite has one writer: queue our transactions here instead of in busy_timeout.
        self._write_turn: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if _is_sqlite(session_factory, settings) else contextlib.nullcontext()
        )
        self.recordings.write_turn = self._write_turn
        self._queued_writes: list[_QueuedWrite] = []
        self._group_writer: asyncio.Task[None] | None = None
        # Transitions a locked or unreachable database refused, by call, oldest first: written
        # again on a timer and before any later transition of the same call (published already).
        self._unrecorded: dict[int, tuple[_LiveCall, list[_Transition]]] = {}
        self._unrecorded_retry: asyncio.TimerHandle | None = None
        self._unrecorded_retry_seconds = UNRECORDED_RETRY_FIRST_SECONDS
        self._unrecorded_reported: set[int] = set()  # calls whose refusal was logged in full
        self._closing = False
        self._closed = False

    # -- starting and stopping --------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        event_bus: EventBus,
        *,
        phone: Phone | None = None,
        phone_config: PhoneConfig | None = None,
        accounts: AccountChoice | None = None,
        accounts_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
        recordings_root: Path | None = None,
        browser_grace_seconds: float = DEFAULT_BROWSER_GRACE_SECONDS,
        recording_codec: Codec = "opus",
        recording_bitrate_kbps: int | None = None,
        recover_on_start: bool = True,
        close_timeout_seconds: float = DEFAULT_CLOSE_TIMEOUT_SECONDS,
    ) -> CallService:
        """Start the service: recovery first, then the phone and the accounts.

        ``phone``: a running phone to use (not closed by the service); otherwise one is started
        with ``phone_config`` (default: 127.0.0.1, free port) and closed by :meth:`close`.
        ``accounts``: as given; else read from ``accounts_file`` or the file named by
        ``DIALER_SIP_ACCOUNTS`` in ``environ`` (default ``os.environ``); else the built-in test
        line is started and every call goes to it.
        """
        test_line: TestLine | None = None
        if accounts is None:
            path = accounts_file
            if path is None:
                path = (
                    accounts_file_from_environment()
                    if environ is None
                    else accounts_file_from_environment(environ)
                )
            if path is not None:
                accounts = load_account_choice(path)
            else:
                host = (phone_config or PhoneConfig()).bind_host
                test_line, accounts = await start_test_line(host)
        owned_phone = phone is None
        if phone is None:
            phone = await Phone.start(phone_config or PhoneConfig())
        service = cls(
            settings,
            session_factory,
            event_bus,
            phone,
            accounts,
            recordings_root=recordings_root,
            browser_grace_seconds=browser_grace_seconds,
            recording_codec=recording_codec,
            recording_bitrate_kbps=recording_bitrate_kbps,
            close_timeout_seconds=close_timeout_seconds,
            owned_phone=owned_phone,
            owned_test_line=test_line,
        )
        if recover_on_start:
            service.recovery_report = await recover(session_factory, service.recordings)
        for calling in accounts.accounts.values():
            if calling.account.register:
                registration = await phone.register(calling.account)
                if not registration.registered:
                    logger.error(
                        "account %s did not register: %s %s",
                        calling.name,
                        registration.status_code,
                        registration.reason,
                    )
        return service

    async def close(self) -> None:
        """Hang up every call (cause local_hangup, hung up by the system), wait for the rows
        and recordings to be written (up to ``close_timeout_seconds``), then stop."""
        if self._closed:
            return
        self._closing = True
        for live in list(self._live_by_id.values()):
            self._request_hangup(live, "local_hangup", HangupParty.SYSTEM)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.close_timeout_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        writer = self._group_writer
        if writer is not None:
            await asyncio.wait({writer}, timeout=self.close_timeout_seconds)
        if self._unrecorded and self._group_writer is None:
            await self._write_queued()  # one last try for what a locked database refused
        if self._unrecorded_retry is not None:
            self._unrecorded_retry.cancel()
            self._unrecorded_retry = None
        for live, transitions in self._unrecorded.values():
            for transition in transitions:
                logger.error(
                    "call %d: could not record %s (the database refused it until shutdown)",
                    live.call_id,
                    transition.state.value,
                )
        self._unrecorded.clear()
        self._unrecorded_reported.clear()
        self._closed = True
        if self._owned_phone:
            await self.phone.aclose()
        if self.test_line is not None:
            await self.test_line.aclose()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.close)
        self._executor.shutdown(wait=True)

    # -- CallControl ------------------------------------------------------------------------------

    def current_call(self, operator_id: int) -> LiveCall | None:
        live = self._live_by_operator.get(operator_id)
        return live.snapshot() if live is not None else None

    async def place_call(self, actor: Actor, request: CallRequest) -> LiveCall:
        """Start a call; ``Conflict`` when the operator already has one (never a second call),
        ``DoNotCall`` for a do-not-call number, ``OutsideCallingWindow`` outside the settings'
        calling window in the callee's time zone, ``NotFound`` / ``ValidationFailed`` for a bad
        contact, phone or number."""
        lock = self._operator_locks.setdefault(actor.user_id, asyncio.Lock())
        async with lock:
            if self._closing:
                raise Conflict("the call service is shutting down")
            if actor.user_id in self._live_by_operator:
                raise Conflict("you already have a call in progress")
            calling = self.accounts.for_operator(actor.user_id)
            async with self._write_turn, self._session_factory() as session:
                contact_id, number = await self._resolve_target(session, actor, request)
                operator = await session.get(User, actor.user_id)
                if operator is None:
                    raise NotFound(f"user {actor.user_id}")
                operator_phone: str | None = None
                if AudioLeg(request.audio_leg) is AudioLeg.PHONE:
                    operator_phone = (operator.phone_extension or "").strip() or None
                    if operator_phone is None:
                        raise ValidationFailed(
                            "audio_leg", "no phone number or extension is set for you"
                        )
                row = await create_call(
                    session,
                    actor,
                    number,
                    contact_id=contact_id,
                    operator_id=actor.user_id,
                    account_name=calling.name,
                    default_region=self.settings.default_region,
                    calling_window=self.settings.calling_window,
                )
                audience = await self._audience(session, actor.user_id, operator.team_id)
                contact = (
                    await session.get(Contact, row.contact_id)
                    if row.contact_id is not None
                    else None
                )
                live = _LiveCall(
                    call_id=row.id,
                    operator_id=actor.user_id,
                    operator_team_id=operator.team_id,
                    contact_id=row.contact_id,
                    number=row.phone_e164,
                    audio_leg=AudioLeg(request.audio_leg),
                    calling=calling,
                    audience=audience,
                    created_at=row.created_at,
                    operator_phone=operator_phone,
                    contact_name=contact.name if contact is not None else None,
                    monitor_hub=CallMonitorHub(self.phone.clock, row.id, actor.user_id),
                )
                await session.commit()
            self._live_by_id[live.call_id] = live
            self._live_by_operator[live.operator_id] = live
        if live.audio_leg is AudioLeg.BROWSER:
            # Subscribed to the media clock before the call's stream, so it runs first on
            # each tick (see dialer.telephony.bridge).
            live.pacer = OperatorFramePacer(self.phone.clock)
        await self._publish(live, _Transition(CallState.CREATED, live.created_at))
        if live.audio_leg is AudioLeg.BROWSER:
            # No browser attached yet: the same grace applies as after a detach.
            self._arm_grace_timer(live)
        self._spawn(self._drive(live), f"call-{live.call_id}")
        return live.snapshot()

    async def hang_up(self, actor: Actor, call_id: int) -> None:
        """Hang up (the operator, their supervisor or an admin); returns at once, the
        ``call.ended`` event follows."""
        live = await self._live_call(actor, call_id, operator_only=False)
        party = HangupParty.OPERATOR if actor.user_id == live.operator_id else HangupParty.SYSTEM
        self._request_hangup(live, "local_hangup", party)

    async def set_muted(self, actor: Actor, call_id: int, muted: bool) -> LiveCall:
        """Muted: the operator's audio is not forwarded; the far end (and the recording's left
        channel) get silence."""
        live = await self._live_call(actor, call_id, operator_only=True)
        live.muted = muted
        if live.pacer is not None:
            live.pacer.muted = muted
        if live.phone_bridge is not None:
            live.phone_bridge.muted = muted
        return live.snapshot()

    async def set_held(self, actor: Actor, call_id: int, held: bool) -> LiveCall:
        """Hold: no SIP re-INVITE is available in ``sip.phone``, so media to the far end stops
        (it hears silence) and resumes on un-hold."""
        live = await self._live_call(actor, call_id, operator_only=True)
        call = live.sip_call
        if call is None or call.is_ended:
            raise Conflict("the call is not connected yet")
        try:
            call.audio.set_hold(held)
        except StreamClosedError as error:
            raise Conflict("the call is over") from error
        if held != live.held:
            logger.info(
                "call %d %s (media only: the phone API offers no SIP hold)",
                live.call_id,
                "held" if held else "resumed",
            )
        live.held = held
        return live.snapshot()

    async def send_dtmf(self, actor: Actor, call_id: int, digits: str) -> None:
        """Send RFC 4733 telephone-events to the far end."""
        if not _DTMF_PATTERN.match(digits):
            raise ValidationFailed("digits", "use 1 to 32 of 0-9 * # A-D")
        live = await self._live_call(actor, call_id, operator_only=True)
        call = live.sip_call
        if call is None or call.is_ended:
            raise Conflict("the call is not connected yet")
        try:
            call.send_dtmf(digits.upper())
        except StreamClosedError as error:
            raise Conflict("the call is over") from error
        except MediaError as error:
            raise Conflict("the far end does not accept DTMF tones") from error

    async def attach_browser_audio(self, actor: Actor, call_id: int) -> CallAudioBridge:
        """The operator's browser audio for a browser-leg call. A new attachment replaces the
        previous one (another tab takes the call over) and cancels the grace timer."""
        live = await self._live_call(actor, call_id, operator_only=True)
        if live.audio_leg is not AudioLeg.BROWSER:
            raise Conflict("this call's audio goes to your phone, not the browser")
        if live.pacer is None:
            raise Conflict("the call has no browser audio")
        self._cancel_grace_timer(live)
        previous = live.bridge
        if previous is not None:
            previous.end()
        live.pacer.clear()
        bridge = CallAudioBridge(live.call_id, live.pacer, lambda gone: self._detached(live, gone))
        live.bridge = bridge
        return bridge

    async def monitor_call(self, actor: Actor, call_id: int, mode: MonitorMode) -> CallMonitor:
        """Join a call in progress as a supervisor (``listen``, ``whisper`` or ``barge``; see
        :mod:`dialer.telephony.monitor_hub`). Supervisors of the operator's team and admins
        only (``PermissionDenied``; ``NotFound`` for a call the actor may not see, ``Conflict``
        when it is not in progress). Auditing is the caller's (``dialer.floor.monitoring``)."""
        if not (actor.is_admin or actor.is_supervisor):
            raise PermissionDenied("only supervisors and admins monitor calls")
        live = await self._live_call(actor, call_id, operator_only=False)
        if actor.user_id == live.operator_id:
            raise PermissionDenied("you cannot monitor your own call")
        hub = live.monitor_hub
        if hub is None or hub.closed or live.finished.is_set():
            raise Conflict(f"call {call_id} is not in progress")
        return hub.join(actor.user_id, mode)

    async def finish_wrap_up(self, operator_id: int) -> None:
        """The operator is done with the last call (outcome saved): publish ``idle``."""
        if operator_id in self._live_by_operator:
            return
        async with self._session_factory() as session:
            operator = await session.get(User, operator_id)
            if operator is None:
                raise NotFound(f"user {operator_id}")
            audience = await self._audience(session, operator_id, operator.team_id)
        await self._event_bus.publish(
            audience,
            "operator.state",
            {"operator_id": operator_id, "state": "idle", "call_id": None, "at": _iso(utc_now())},
        )

    # -- looking things up ------------------------------------------------------------------------

    async def _resolve_target(
        self, session: AsyncSession, actor: Actor, request: CallRequest
    ) -> tuple[int | None, str]:
        """(contact id, number to dial) for a request; a typed number unknown to the actor
        becomes a new contact owned by the actor."""
        if request.contact_id is not None or request.phone_id is not None:
            phone: ContactPhone | None
            if request.contact_id is not None:
                contact = await get_contact(session, actor, request.contact_id)
                if request.phone_id is not None:
                    phone = next((p for p in contact.phones if p.id == request.phone_id), None)
                    if phone is None:
                        raise NotFound(f"phone {request.phone_id} of contact {contact.id}")
                else:
                    phone = contact.primary_phone
                    if phone is None:
                        raise ValidationFailed("contact_id", "the contact has no phone number")
                return contact.id, phone.e164
            phone = await session.get(ContactPhone, request.phone_id)
            if phone is None:
                raise NotFound(f"phone {request.phone_id}")
            contact = await get_contact(session, actor, phone.contact_id)
            return contact.id, phone.e164
        if request.number is None or not request.number.strip():
            raise ValidationFailed("number", "give a contact, one of its phones or a number")
        region = self.settings.default_region
        normalised = normalise_phone(request.number, region)
        matches = await find_contacts_by_phone(session, normalised.e164, actor)
        if matches:
            return matches[0].id, normalised.e164
        contact = await create_contact(
            session,
            actor,
            ContactInput(phones=[PhoneInput(raw=request.number.strip(), primary=True)]),
            default_region=region,
        )
        return contact.id, normalised.e164

    async def _audience(
        self, session: AsyncSession, operator_id: int, team_id: int | None
    ) -> tuple[int, ...]:
        """The operator, the supervisors of their team and the admins (enabled users)."""
        team_supervisors = (
            and_(User.role == "supervisor", User.team_id == team_id)
            if team_id is not None
            else false()
        )
        statement = select(User.id).where(
            User.disabled.is_(False),
            or_(User.id == operator_id, User.role == "admin", team_supervisors),
        )
        ids = set((await session.scalars(statement)).all())
        ids.add(operator_id)
        return tuple(sorted(ids))

    async def _live_call(self, actor: Actor, call_id: int, *, operator_only: bool) -> _LiveCall:
        live = self._live_by_id.get(call_id)
        if live is None:
            async with self._session_factory() as session:
                await get_call(session, actor, call_id)  # NotFound if not visible
            raise Conflict(f"call {call_id} is not in progress")
        if actor.user_id == live.operator_id:
            return live
        may_see = actor.is_admin or (
            actor.is_supervisor
            and actor.team_id is not None
            and actor.team_id == live.operator_team_id
        )
        if not may_see:
            raise NotFound(f"call {call_id}")
        if operator_only:
            raise PermissionDenied("only the operator on the call can do this")
        return live

    # -- hanging up and the browser grace timer ---------------------------------------------------

    def _request_hangup(self, live: _LiveCall, cause: str, party: HangupParty) -> None:
        if live.end_cause is None:
            live.end_cause = cause
            live.hangup_by = party
        live.hangup_requested = True
        for call in (live.sip_call, live.operator_call):
            if call is not None:
                call.hangup()

    def _detached(self, live: _LiveCall, bridge: CallAudioBridge) -> None:
        if live.bridge is not bridge:
            return  # an older attachment that was already replaced
        live.bridge = None
        if live.pacer is not None:
            live.pacer.clear()
        if not live.finished.is_set():
            self._arm_grace_timer(live)

    def _arm_grace_timer(self, live: _LiveCall) -> None:
        self._cancel_grace_timer(live)
        loop = asyncio.get_running_loop()
        live.grace_timer = loop.call_later(self.browser_grace_seconds, self._grace_expired, live)

    def _cancel_grace_timer(self, live: _LiveCall) -> None:
        if live.grace_timer is not None:
            live.grace_timer.cancel()
            live.grace_timer = None

    def _grace_expired(self, live: _LiveCall) -> None:
        live.grace_timer = None
        if live.bridge is None and not live.finished.is_set():
            logger.info(
                "call %d: no browser audio for %.0f s, hanging up",
                live.call_id,
                self.browser_grace_seconds,
            )
            self._request_hangup(live, BROWSER_DISCONNECTED, HangupParty.SYSTEM)

    # -- driving a call ---------------------------------------------------------------------------

    def _spawn(self, coroutine: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            coroutine,  # type: ignore[arg-type]
            name=name,
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self, live: _LiveCall) -> None:
        try:
            if live.calling.record_calls:
                live.recording = self.recordings.start(live.call_id, live.created_at)
            if live.audio_leg is AudioLeg.PHONE:
                await self._drive_phone_leg(live)
            else:
                await self._drive_browser_leg(live)
        except Exception:
            # Nobody awaits the driver: say why the call is ended instead of leaving the
            # exception to the task (reported, if ever, when it is garbage collected).
            logger.exception("call %d: its driver failed; the call is ended", live.call_id)
        finally:
            await self._finish(live)

    async def _drive_browser_leg(self, live: _LiveCall) -> None:
        pacer = live.pacer
        assert pacer is not None
        call = await self._dial(live, live.number)
        if call is None:
            return
        pacer.attach(call.audio)
        recording = live.recording
        hub = live.monitor_hub
        assert hub is not None
        # Supervisors who barge are mixed into what is sent (and so recorded on the left).
        pacer.mixer = hub.operator_out

        def to_browser(frame: bytes) -> None:
            bridge = live.bridge
            if bridge is not None:
                bridge.deliver_far_end(hub.to_operator(frame))  # + whispering supervisors

        relay = FarEndRelay(to_browser)

        def tap(sent: bytes | None, received: bytes | None, timestamp: int) -> None:
            # once per tick with both sides (one recorder call for the two channels)
            if recording is not None:
                recording.write_tick(sent, received, timestamp)
            if received is not None:
                hub.note_far_end(received)
                relay.played(received)

        call.audio.add_duplex_tap(tap)
        call.audio.add_arrival_listener(relay.arrived)
        await self._follow(live, call)

    async def _drive_phone_leg(self, live: _LiveCall) -> None:
        assert live.operator_phone is not None
        bridge = PhoneLegBridge(self.phone.clock, live.recording, live.monitor_hub)
        live.phone_bridge = bridge
        bridge.muted = live.muted
        try:
            try:
                operator_call = await self.phone.call(live.calling.account, live.operator_phone)
            except SipError as error:
                await self._fail_before_dialing(live, error, operator_leg=True)
                return
            live.operator_call = operator_call
            bridge.attach_operator(operator_call, self.phone.clock.next_tick_index)
            if live.hangup_requested:
                operator_call.hangup()
            if not await operator_call.wait_answered():
                cause = operator_call.cause or CallCause.network_error
                await self._write(
                    live,
                    CallState.FAILED,
                    utc_now(),
                    cause=live.end_cause or f"{OPERATOR_LEG_PREFIX}{cause.value}",
                    sip_code=operator_call.sip_code,
                    reason=operator_call.reason or None,
                    hangup_by=live.hangup_by or HangupParty.SYSTEM,
                )
                return
            call = await self._dial(live, live.number)
            if call is None:
                operator_call.hangup()
                return
            bridge.attach_customer(call, self.phone.clock.next_tick_index)

            async def operator_hung_up() -> None:
                await operator_call.wait_ended()
                if not call.is_ended:
                    if live.end_cause is None:
                        live.end_cause = CallCause.local_hangup.value
                        live.hangup_by = HangupParty.OPERATOR
                    call.hangup()

            watcher = asyncio.get_running_loop().create_task(operator_hung_up())
            try:
                await self._follow(live, call)
            finally:
                watcher.cancel()
                operator_call.hangup()
        finally:
            bridge.close()

    async def _dial(self, live: _LiveCall, number: str) -> Call | None:
        """Place the SIP call and write ``dialing``; None (row failed) if it cannot be placed."""
        if live.hangup_requested:
            await self._write(
                live,
                CallState.FAILED,
                utc_now(),
                cause=live.end_cause or CallCause.cancelled.value,
                hangup_by=live.hangup_by or HangupParty.OPERATOR,
            )
            return None
        try:
            call = await self.phone.call(live.calling.account, number)
        except SipError as error:
            await self._fail_before_dialing(live, error, operator_leg=False)
            return None
        live.sip_call = call
        if live.held:
            call.audio.set_hold(True)
        await self._write(
            live,
            CallState.DIALING,
            _wall_clock(call, call.placed_at),
            sip_call_id=call.key,
        )
        if live.hangup_requested:
            call.hangup()
        return call

    async def _fail_before_dialing(
        self, live: _LiveCall, error: SipError, *, operator_leg: bool
    ) -> None:
        cause = CallCause.invalid_number if isinstance(error, DialPlanError) else None
        text = cause.value if cause is not None else "network_error"
        if operator_leg:
            text = f"{OPERATOR_LEG_PREFIX}{text}"
        logger.warning("call %d could not be placed: %s", live.call_id, error)
        await self._write(
            live,
            CallState.FAILED,
            utc_now(),
            cause=text,
            reason=str(error)[:200],
            hangup_by=HangupParty.SYSTEM,
        )

    async def _follow(self, live: _LiveCall, call: Call) -> None:
        """Write and publish the call's transitions until it ends.

        A reader stamps each SIP event the moment it arrives, so database latency on one
        transition never shifts the time recorded for the next. The events that arrived by the
        time this call's turn to write comes (ringing and answered often come together) are
        written in one transaction, then published one by one, in order."""
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[CallEvent, float]] = asyncio.Queue()

        async def stamp() -> None:
            async for event in call.events():
                arrived.put_nowait((event, loop.time()))

        reader = loop.create_task(stamp())
        ended = False
        first: list[tuple[CallEvent, float]] = []

        def transitions() -> list[_Transition]:
            """Every event that has arrived, as the transitions it makes (up to the end)."""
            nonlocal ended
            made: list[_Transition] = []
            state = live.state
            while not ended and (first or not arrived.empty()):
                event, received_at = first.pop() if first else arrived.get_nowait()
                transition = _transition_of(live, call, state, event, received_at)
                if transition is not None:
                    made.append(transition)
                    state = transition.state
                ended = isinstance(event, CallEnded)
            return made

        try:
            while not ended:
                first.append(await arrived.get())  # with any that follow, in its turn
                await self._write_transitions(live, transitions)
        finally:
            reader.cancel()

    async def _write(
        self,
        live: _LiveCall,
        state: CallState,
        at: datetime,
        *,
        cause: str | None = None,
        sip_code: int | None = None,
        reason: str | None = None,
        hangup_by: HangupParty | None = None,
        sip_call_id: str | None = None,
        record_code: bool = True,
    ) -> None:
        """Write a transition to the row and commit, then publish it."""
        transition = _Transition(
            state,
            at,
            cause=cause,
            sip_code=sip_code,
            reason=reason,
            hangup_by=hangup_by,
            sip_call_id=sip_call_id,
            record_code=record_code,
        )
        await self._write_transitions(live, lambda: [transition])

    async def _write_transitions(
        self, live: _LiveCall, collect: Callable[[], list[_Transition]]
    ) -> None:
        """Write the transitions ``collect`` gives once it is this call's turn to write, then
        publish them in order.

        Group commit: the calls waiting to write when a turn comes are written together, in
        one transaction (one fsync on SQLite instead of one per transition); if that fails,
        each call's transitions are tried in a transaction of their own, then one by one."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[list[_Transition]] = loop.create_future()
        self._queued_writes.append(_QueuedWrite(live, collect, written))
        self._start_group_writer()
        for transition in await asyncio.shield(written):
            live.state = transition.state
            await self._publish(live, transition)

    async def _write_queued(self) -> None:
        """Write what is queued, a group per turn, until nothing is (see _write_transitions);
        each turn also writes again what the database refused before (``_unrecorded``)."""
        group: list[_QueuedWrite] = []
        retrying = bool(self._unrecorded)
        try:
            while self._queued_writes or retrying:
                retrying = False
                async with self._write_turn:
                    group, self._queued_writes = self._queued_writes, []
                    made = [(queued.live, queued.collect()) for queued in group]
                    await self._record_group(self._after_unrecorded(made))
                for queued, (_live, transitions) in zip(group, made, strict=True):
                    queued.written.set_result(transitions)
                group = []
        finally:
            self._group_writer = None
            # Cancelled (the service is closing): nothing more is written; nobody waits forever.
            for queued in (*group, *self._queued_writes):
                if not queued.written.done():
                    queued.written.set_result([])
            self._queued_writes = []

    def _after_unrecorded(
        self, made: list[tuple[_LiveCall, list[_Transition]]]
    ) -> list[tuple[_LiveCall, list[_Transition]]]:
        """This turn's group: every call's refused transitions first, then the new ones (a
        call's transitions stay in order)."""
        unrecorded, self._unrecorded = self._unrecorded, {}
        group = {
            call_id: (live, list(transitions))
            for call_id, (live, transitions) in unrecorded.items()
        }
        for live, transitions in made:
            if not transitions:
                continue
            if live.call_id in group:
                group[live.call_id][1].extend(transitions)
            else:
                group[live.call_id] = (live, transitions)
        return list(group.values())

    def _keep_unrecorded(self, group: list[tuple[_LiveCall, list[_Transition]]]) -> None:
        """The database is locked or unreachable: keep the group's transitions, in order, to
        write them again later (on a timer that backs off, and in the next turn)."""
        for live, transitions in group:
            known = self._unrecorded.get(live.call_id)
            if known is None:
                self._unrecorded[live.call_id] = (live, list(transitions))
            else:
                known[1].extend(transitions)
            logger.warning(
                "call %d: %s not recorded yet (the database is locked or unreachable); "
                "trying again in %.1f s",
                live.call_id,
                ", ".join(transition.state.value for transition in transitions),
                self._unrecorded_retry_seconds,
                # the cause in full once per call until written, not on every try
                exc_info=live.call_id not in self._unrecorded_reported,
            )
            self._unrecorded_reported.add(live.call_id)
        if self._unrecorded_retry is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._unrecorded_retry = loop.call_later(
                self._unrecorded_retry_seconds, self._retry_unrecorded
            )
            self._unrecorded_retry_seconds = min(
                self._unrecorded_retry_seconds * 2, UNRECORDED_RETRY_LONGEST_SECONDS
            )

    def _retry_unrecorded(self) -> None:
        """The retry timer: a write turn for the refused transitions, unless one is running
        (it writes them too)."""
        self._unrecorded_retry = None
        if self._unrecorded and not self._closed:
            self._start_group_writer()

    def _start_group_writer(self) -> None:
        """Start the task that writes the queued (and the refused) transitions, unless it runs."""
        if self._group_writer is None:
            self._group_writer = asyncio.get_running_loop().create_task(
                self._write_queued(), name="call-transitions"
            )

    async def _record_group(self, group: list[tuple[_LiveCall, list[_Transition]]]) -> None:
        """One transaction for the group; if a transition is refused, each call alone, then
        each transition. A locked or unreachable database keeps what is left for a later try
        (``_keep_unrecorded``); a transition refused otherwise is logged and dropped."""
        if not group:
            return
        try:
            await self._record(group)
        except OperationalError:
            # The database is locked or gone: trying each again now would only wait as long
            # again, per call, while every other write waits for this turn.
            self._keep_unrecorded(group)
            return
        except (SQLAlchemyError, DialerError):
            if len(group) == 1 and len(group[0][1]) == 1:
                live, (transition,) = group[0]
                logger.exception(
                    "call %d: could not record %s", live.call_id, transition.state.value
                )
                return
        else:
            self._unrecorded_retry_seconds = UNRECORDED_RETRY_FIRST_SECONDS
            self._note_recorded(live for live, _transitions in group)
            return
        for index, (live, transitions) in enumerate(group):
            if len(group) > 1:
                try:
                    await self._record([(live, transitions)])
                    self._note_recorded([live])
                    continue
                except OperationalError:
                    self._keep_unrecorded(group[index:])
                    return
                except (SQLAlchemyError, DialerError):
                    if len(transitions) == 1:
                        logger.exception(
                            "call %d: could not record %s",
                            live.call_id,
                            transitions[0].state.value,
                        )
                        continue
            for position, transition in enumerate(transitions):
                try:
                    await self._record([(live, [transition])])
                    self._note_recorded([live])
                except OperationalError:
                    self._keep_unrecorded([(live, transitions[position:]), *group[index + 1 :]])
                    return
                except (SQLAlchemyError, DialerError):
                    logger.exception(
                        "call %d: could not record %s", live.call_id, transition.state.value
                    )

    def _note_recorded(self, lives: Iterable[_LiveCall]) -> None:
        """Say so when a call whose transitions the database refused before is written."""
        if not self._unrecorded_reported:
            return
        for live in lives:
            if live.call_id in self._unrecorded_reported and live.call_id not in self._unrecorded:
                self._unrecorded_reported.discard(live.call_id)
                logger.warning("call %d: the transitions refused before are recorded", live.call_id)

    async def _record(self, group: list[tuple[_LiveCall, list[_Transition]]]) -> None:
        """Write each call's transitions to its row, all in one transaction."""
        async with self._session_factory() as session:
            for live, transitions in group:
                for transition in transitions:
                    record_code = transition.record_code
                    await record_call_transition(
                        session,
                        live.call_id,
                        transition.state,
                        transition.at,
                        sip_call_id=transition.sip_call_id,
                        sip_code=transition.sip_code if record_code else None,
                        sip_reason=transition.reason if record_code else None,
                        end_cause=transition.cause,
                        hangup_by=transition.hangup_by,
                    )
            await session.commit()

    async def _publish(self, live: _LiveCall, transition: _Transition) -> None:
        """The call's event and its operator's state, to the call's audience."""
        state, at, hangup_by = transition.state, transition.at, transition.hangup_by
        payload: dict[str, object] = {
            "call_id": live.call_id,
            "contact_id": live.contact_id,
            "contact_name": live.contact_name,
            "operator_id": live.operator_id,
            "number": live.number,
            "state": state.value,
            "cause": transition.cause,
            "sip_code": transition.sip_code,
            "reason": transition.reason,
            "hangup_by": hangup_by.value if hangup_by is not None else None,
            "at": _iso(at),
        }
        await self._event_bus.publish(live.audience, _EVENT_KIND_OF[state], payload)
        await self._event_bus.publish(
            live.audience,
            "operator.state",
            {
                "operator_id": live.operator_id,
                "state": _OPERATOR_STATE_OF[state],
                "call_id": live.call_id,
                "contact_id": live.contact_id,
                "contact_name": live.contact_name,
                "at": _iso(at),
            },
        )

    async def _finish(self, live: _LiveCall) -> None:
        """After the last transition: free the operator, end the bridge, store the recording."""
        if live.state not in (CallState.ENDED, CallState.FAILED, CallState.INTERRUPTED):
            # The driver was cancelled or failed unexpectedly: end the SIP side; the row is
            # marked interrupted by the next start-up's recovery.
            self._request_hangup(live, "system", HangupParty.SYSTEM)
        live.finished.set()
        self._cancel_grace_timer(live)
        if live.monitor_hub is not None:
            live.monitor_hub.close()
        if live.pacer is not None:
            live.pacer.close()
        if live.bridge is not None:
            live.bridge.end()
            live.bridge = None
        self._live_by_id.pop(live.call_id, None)
        if self._live_by_operator.get(live.operator_id) is live:
            del self._live_by_operator[live.operator_id]
        recording = live.recording
        if recording is not None:
            # Let the last frames (tapped up to the stream's close) reach the recorder.
            await asyncio.sleep(0.15)
            row = await self.recordings.store(recording)
            if row is not None:
                await self._event_bus.publish(
                    live.audience,
                    "call.recording",
                    {
                        "call_id": live.call_id,
                        "contact_id": live.contact_id,
                        "operator_id": live.operator_id,
                        "recording_id": row.id,
                        "codec": row.codec,
                        "duration_seconds": row.duration_seconds,
                    },
                )


def _is_sqlite(session_factory: async_sessionmaker[AsyncSession], settings: Settings) -> bool:
    bind = session_factory.kw.get("bind")
    if isinstance(bind, AsyncEngine):
        return bind.dialect.name == "sqlite"
    return make_url(settings.database_url).get_backend_name() == "sqlite"


def _wall_clock(call: Call, loop_time: float) -> datetime:
    """A loop-time instant of ``call`` as an aware UTC datetime."""
    return datetime.fromtimestamp(call.started_wall_clock + (loop_time - call.placed_at), UTC)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
