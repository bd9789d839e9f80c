"""SIP transports for the asyncio adapter: one UDP socket, a TCP listener, TCP/TLS connections.

:class:`TransportSet` owns every socket of an endpoint. Whatever arrives is handed to
``on_message(data, source, transport)`` one SIP message at a time (a datagram, or a message cut
out of a stream by :class:`sip.message.StreamFramer`). ``send(data, destination, transport)``
never blocks: UDP goes out at once; over TCP/TLS the connection to ``destination`` is reused
when one exists (whichever side opened it) and opened otherwise, the bytes waiting for it.
Host names are resolved with ``loop.getaddrinfo`` (cached for a minute). Any failure to deliver
(refused, reset, unreachable, TLS handshake or certificate failure) is reported through
``on_error(destination, transport)`` so the SIP core can fail the transactions concerned.

TLS verifies the server certificate and host name by default (``tls_context_for`` decides per
destination; :func:`client_tls_context` builds the usual contexts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sip.errors import MessageParseError
from sip.message import StreamFramer

logger = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[bytes, Address, str], None]
ErrorHandler = Callable[[Address, str], None]
TlsContextChooser = Callable[[str, int], ssl.SSLContext]

RESOLVE_CACHE_SECONDS = 60.0
CONNECT_TIMEOUT = 10.0
UDP_RECEIVE_BUFFER = 4 << 20


def client_tls_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A TLS client context: certificate and host name verified against ``ca_file`` (or the
    system store) unless ``verify`` is False."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: TransportSet) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host, port = str(addr[0]), int(str(addr[1]))
        self._owner.deliver(data, (host, port), "udp")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for some earlier datagram; the destination is unknown here.
        logger.debug("UDP error: %s", exc)


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection: frames incoming bytes into SIP messages."""

    def __init__(self, owner: TransportSet, transport_name: str) -> None:
        self._owner = owner
        self.transport_name = transport_name
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.last_activity = time.monotonic()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self._owner.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        assert self.peer is not None
        try:
            messages = self._framer.feed(data)
        except MessageParseError as error:
            logger.warning(
                "closing %s connection from %s: %s", self.transport_name, self.peer, error
            )
            if self.transport is not None:
                self.transport.close()
            return
        for message in messages:
            self._owner.deliver(bytes(message), self.peer, self.transport_name)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.connection_closed(self, exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


@dataclass
class _PendingConnection:
    task: asyncio.Task[None]
    queued: list[bytes] = field(default_factory=list)


@dataclass
class TransportStatistics:
    datagrams_sent: int = 0
    datagrams_received: int = 0
    stream_messages_received: int = 0
    connections_opened: int = 0
    connections_accepted: int = 0
    send_errors: int = 0


class TransportSet:
    """Every socket of one SIP endpoint; see the module docstring."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_error: ErrorHandler,
        *,
        tls_context_for: TlsContextChooser | None = None,
    ) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._tls_context_for = tls_context_for or (lambda host, port: client_tls_context())
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._connections: dict[tuple[str, str, int], _StreamProtocol] = {}
        self._pending: dict[tuple[str, str, int], _PendingConnection] = {}
        self._resolved: dict[str, tuple[str, float]] = {}
        self._resolving: set[asyncio.Task[None]] = set()
        self.statistics = TransportStatistics()
        self.host = ""
        self.udp_port = 0
        self.tcp_port = 0
        self.tls_port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(
        self,
        host: str,
        port: int = 0,
        *,
        tcp: bool = True,
        tls_server_context: ssl.SSLContext | None = None,
        tls_port: int = 0,
    ) -> None:
        """Bind UDP on ``host:port`` (0: any free port) and, with ``tcp``, listen on TCP on the
        same port number; with ``tls_server_context`` also accept TLS on ``tls_port``."""
        loop = asyncio.get_running_loop()
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _attempt in range(20):
            udp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self), local_addr=(host, port), family=family
            )
            bound_port = int(udp_transport.get_extra_info("sockname")[1])
            if not tcp:
                break
            try:
                self._tcp_server = await loop.create_server(
                    lambda: _StreamProtocol(self, "tcp"), host, bound_port, family=family
                )
            except OSError:
                udp_transport.close()
                if port:
                    raise
                continue
            break
        else:
            raise OSError(f"no port on {host} free for both UDP and TCP")
        udp_socket = udp_transport.get_extra_info("socket")
        if udp_socket is not None:
            # Bursts of responses (hundreds of calls set up at once) must not overflow the
            # default buffer while the loop is busy; the kernel caps this at rmem_max.
            with contextlib.suppress(OSError):
                udp_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        self._udp = udp_transport
        self.udp_port = bound_port
        self.tcp_port = bound_port if tcp else 0
        if tls_server_context is not None:
            self._tls_server = await loop.create_server(
                lambda: _StreamProtocol(self, "tls"),
                host,
                tls_port,
                family=family,
                ssl=tls_server_context,
            )
            self.tls_port = int(self._tls_server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Close every socket and connection now (``wait_closed`` waits for the streams)."""
        for pending in list(self._pending.values()):
            pending.task.cancel()
        self._pending.clear()
        for task in list(self._resolving):
            task.cancel()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        for server in (self._tcp_server, self._tls_server):
            if server is not None:
                server.close()
        if self._udp is not None:
            self._udp.close()

    async def wait_closed(self) -> None:
        for connection in list(self._connections.values()):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), 1.0)
        self._connections.clear()

    # -- receiving ------------------------------------------------------------------------------

    def deliver(self, data: bytes, source: Address, transport: str) -> None:
        if transport == "udp":
            self.statistics.datagrams_received += 1
            if data in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00"):
                return  # keep-alive
        else:
            self.statistics.stream_messages_received += 1
        self._on_message(data, source, transport)

    def connection_opened(self, connection: _StreamProtocol) -> None:
        assert connection.peer is not None
        key = (connection.transport_name, connection.peer[0], connection.peer[1])
        self._connections.setdefault(key, connection)

    def connection_closed(self, connection: _StreamProtocol, error: Exception | None) -> None:
        for key, known in list(self._connections.items()):
            if known is connection:
                del self._connections[key]
        if error is not None and connection.peer is not None:
            logger.info(
                "%s connection to %s lost: %s", connection.transport_name, connection.peer, error
            )
            self._on_error(connection.peer, connection.transport_name)

    # -- sending --------------------------------------------------------------------------------

    def send(self, data: bytes, destination: Address, transport: str) -> None:
        transport = transport.lower()
        host, port = destination
        host = host.strip("[]")
        if not is_ip_address(host):
            cached = self._resolved.get(host)
            if cached is None or cached[1] < time.monotonic():
                task = asyncio.get_running_loop().create_task(
                    self._resolve_then_send(data, (host, port), transport)
                )
                self._resolving.add(task)
                task.add_done_callback(self._resolving.discard)
                return
            address = cached[0]
        else:
            address = host
        self._send_resolved(data, (address, port), transport, destination)

    async def _resolve_then_send(self, data: bytes, destination: Address, transport: str) -> None:
        host, port = destination
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as error:
            logger.warning("cannot resolve %s: %s", host, error)
            self.statistics.send_errors += 1
            self._on_error(destination, transport)
            return
        address = str(infos[0][4][0])
        self._resolved[host] = (address, time.monotonic() + RESOLVE_CACHE_SECONDS)
        self._send_resolved(data, (address, port), transport, destination)

    def _send_resolved(
        self, data: bytes, address: Address, transport: str, original: Address
    ) -> None:
        if transport == "udp":
            if self._udp is None:
                raise RuntimeError("transport set is not open")
            try:
                self._udp.sendto(data, address)
            except OSError as error:
                logger.warning("UDP send to %s failed: %s", address, error)
                self.statistics.send_errors += 1
                self._on_error(original, transport)
                return
            self.statistics.datagrams_sent += 1
            return
        key = (transport, address[0], address[1])
        connection = self._connections.get(key)
        if connection is not None and connection.transport is not None:
            connection.send(data)
            return
        pending = self._pending.get(key)
        if pending is not None:
            pending.queued.append(data)
            return
        task = asyncio.get_running_loop().create_task(self._connect(key, original[0], transport))
        self._pending[key] = _PendingConnection(task, [data])

    async def _connect(self, key: tuple[str, str, int], server_name: str, transport: str) -> None:
        _, address, port = key
        loop = asyncio.get_running_loop()
        context = self._tls_context_for(server_name, port) if transport == "tls" else None
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _StreamProtocol(self, transport),
                    address,
                    port,
                    ssl=context,
                    server_hostname=server_name if context is not None else None,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            pending = self._pending.pop(key, None)
            if isinstance(error, ssl.SSLCertVerificationError):
                logger.warning("TLS certificate of %s:%s rejected: %s", server_name, port, error)
            else:
                logger.warning(
                    "cannot connect over %s to %s:%s: %s", transport, address, port, error
                )
            self.statistics.send_errors += 1
            if pending is not None:
                self._on_error((server_name, port), transport)
                if server_name != address:
                    self._on_error((address, port), transport)
            return
        self.statistics.connections_opened += 1
        self._connections[key] = protocol
        pending = self._pending.pop(key, None)
        if pending is not None:
            for data in pending.queued:
                protocol.send(data)
