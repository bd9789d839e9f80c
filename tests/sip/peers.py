# ruff: noqa: ASYNC240  (small files written before a peer starts; blocking is fine here)
"""Real SIP peers for the tests: SIPp, Kamailio and baresip on 127.0.0.1.

Every peer is started as a child process on free ports, its readiness is checked by looking for
its listening socket in ``/proc/net``, and it is stopped by its own PID. Nothing here knows about
our SIP stack: these are the independent implementations our stack is tested against.

- :func:`start_sipp` runs one scenario from ``tests/sip/scenarios`` as a callee (UAS).
- :func:`start_kamailio` runs the registrar + proxy of ``tests/sip/kamailio/kamailio.cfg`` with
  digest users kept by ``auth_db`` in db_text files; ``challenge="www"`` gives 401 on INVITE,
  ``challenge="proxy"`` gives 407.
- :func:`start_baresip` runs an auto-answering baresip that plays a WAV (aufile) and dumps what
  it receives to WAV files (sndfile).

Helpers build the media the peers play: :func:`write_rtp_pcap` writes an Ethernet/IPv4/UDP pcap
of RTP packets for SIPp's ``play_pcap_audio``; :func:`tone_packets` and :func:`dtmf_packets`
produce the packets (G.711 μ-law tone, RFC 4733 events).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import struct
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
KAMAILIO_CONFIG = HERE / "kamailio" / "kamailio.cfg"
LOOPBACK = "127.0.0.1"
SAMPLE_RATE = 8000

Protocol = Literal["udp", "tcp"]


class PeerError(RuntimeError):
    """A peer could not be started or did not become ready."""


# --------------------------------------------------------------------------------------------
# ports


def free_port(*, both: bool = True) -> int:
    """A port that is free for UDP (and TCP when ``both``) on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port: int = udp.getsockname()[1]
            if not both:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise PeerError("no free port found")


def free_port_pair() -> int:
    """An even port P with P..P+3 free for UDP (RTP, RTCP, and SIPp's +2 echo port)."""
    for _ in range(200):
        base = free_port(both=False) & ~1
        sockets: list[socket.socket] = []
        try:
            for offset in range(4):
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(udp)
                udp.bind((LOOPBACK, base + offset))
        except OSError:
            continue
        finally:
            for udp in sockets:
                udp.close()
        return base
    raise PeerError("no free media port range found")


def is_listening(port: int, protocol: Protocol) -> bool:
    """Whether some process has a socket bound to 127.0.0.1:port (TCP: in LISTEN state)."""
    table = Path(f"/proc/net/{protocol}")
    wanted_address = f"0100007F:{port:04X}"
    any_address = f"00000000:{port:04X}"
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if local not in (wanted_address, any_address):
            continue
        if protocol == "udp" or state == "0A":
            return True
    return False


async def wait_listening(
    process: asyncio.subprocess.Process, port: int, protocol: Protocol, seconds: float = 10.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not is_listening(port, protocol):
        if process.returncode is not None:
            raise PeerError(f"peer exited with {process.returncode} before listening on {port}")
        if loop.time() > deadline:
            raise PeerError(f"peer not listening on {protocol} port {port} after {seconds} s")
        await asyncio.sleep(0.02)


async def stop_process(
    process: asyncio.subprocess.Process, seconds: float = 5.0, *, whole_group: bool = False
) -> None:
    """Terminate one child process by PID (SIGTERM, then SIGKILL), and reap it.

    ``whole_group``: the child leads its own process group (``start_new_session=True``) and
    forks workers of its own (Kamailio): the signals go to the group, and whatever of it is
    left once the leader is gone is killed, so no worker outlives the test."""

    def send(signal_number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if whole_group:
                os.killpg(process.pid, signal_number)
            else:
                os.kill(process.pid, signal_number)

    if process.returncode is None:
        send(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), seconds)
        except TimeoutError:
            send(signal.SIGKILL)
            await process.wait()
    if whole_group:
        send(signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# media for the peers to play


def linear_to_ulaw(samples: npt.NDArray[np.int16]) -> bytes:
    """G.711 μ-law encoding (ITU-T G.711, segment/mantissa form)."""
    bias = 0x84
    clip = 32635
    values = samples.astype(np.int32)
    sign = np.where(values < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(values), clip) + bias
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded = ~(sign | (exponent << 4) | mantissa) & 0xFF
    result: bytes = encoded.astype(np.uint8).tobytes()
    return result


def ulaw_to_linear(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 μ-law decoding."""
    encoded = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = encoded & 0x80
    exponent = (encoded >> 4) & 0x07
    mantissa = encoded & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    payload: bytes
    marker: bool = False
    ssrc: int = 0x5EED1234
    send_offset: float = 0.0  # seconds after the first packet

    def __bytes__(self) -> bytes:
        first = 0x80
        second = (0x80 if self.marker else 0) | self.payload_type
        header = struct.pack(
            "!BBHII", first, second, self.sequence & 0xFFFF, self.timestamp, self.ssrc
        )
        return header + self.payload


def tone_samples(frequency: float, seconds: float, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    count = round(seconds * SAMPLE_RATE)
    times = np.arange(count) / SAMPLE_RATE
    return (amplitude * np.sin(2 * math.pi * frequency * times)).astype(np.int16)


def tone_packets(frequency: float, seconds: float) -> list[RtpPacket]:
    """A μ-law tone as 20 ms RTP packets (payload type 0)."""
    encoded = linear_to_ulaw(tone_samples(frequency, seconds))
    packets = []
    for index in range(len(encoded) // 160):
        packets.append(
            RtpPacket(
                payload_type=0,
                sequence=1000 + index,
                timestamp=160_000 + index * 160,
                payload=encoded[index * 160 : (index + 1) * 160],
                marker=index == 0,
                send_offset=index * 0.02,
            )
        )
    return packets


DTMF_EVENTS = {**{str(digit): digit for digit in range(10)}, "*": 10, "#": 11}


def dtmf_packets(digits: str, payload_type: int = 101) -> list[RtpPacket]:
    """RFC 4733 telephone-events: each digit 100 ms, three end packets, 100 ms gaps."""
    packets: list[RtpPacket] = []
    sequence = 2000
    offset = 0.0
    for position, digit in enumerate(digits):
        event = DTMF_EVENTS[digit]
        timestamp = 320_000 + position * 1600
        for step in range(1, 6):
            end = step == 5
            duration = step * 160
            repeats = 3 if end else 1
            for _ in range(repeats):
                payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                packets.append(
                    RtpPacket(
                        payload_type, sequence, timestamp, payload, step == 1, 0x5EED4321, offset
                    )
                )
                sequence += 1
            offset += 0.02
        offset += 0.1
    return packets


def write_rtp_pcap(path: Path, packets: Sequence[RtpPacket]) -> None:
    """An Ethernet/IPv4/UDP capture of the packets, as SIPp's play_pcap_audio expects."""
    output = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for packet in packets:
        rtp = bytes(packet)
        udp = struct.pack("!HHHH", 40000, 40000, 8 + len(rtp), 0) + rtp
        total = 20 + len(udp)
        ip_header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
            socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"),
        )  # fmt: skip
        frame = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
        frame += ip_header + udp
        seconds = int(packet.send_offset)
        micros = round((packet.send_offset - seconds) * 1_000_000)
        output += struct.pack("<IIII", 1_000_000 + seconds, micros, len(frame), len(frame))
        output += frame
    path.write_bytes(bytes(output))


def write_wav(path: Path, samples: npt.NDArray[np.int16], channels: int = 1) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: Path) -> tuple[npt.NDArray[np.int16], int, int]:
    """Samples (interleaved when stereo), channel count and sample rate of a 16-bit WAV."""
    with wave.open(str(path), "rb") as reader:
        data = reader.readframes(reader.getnframes())
        return (
            np.frombuffer(data, dtype="<i2").astype(np.int16),
            reader.getnchannels(),
            (reader.getframerate()),
        )


# --------------------------------------------------------------------------------------------
# SIPp


@dataclass
class SippPeer:
    """One SIPp process running one scenario as a callee."""

    process: asyncio.subprocess.Process
    sip_port: int
    media_port: int
    directory: Path
    scenario: str

    @property
    def uri_host(self) -> str:
        return f"{LOOPBACK}:{self.sip_port}"

    async def finished(self, seconds: float = 20.0) -> int:
        """Wait for SIPp to end its calls; its exit code (0: every call passed its scenario)."""
        try:
            return await asyncio.wait_for(self.process.wait(), seconds)
        except TimeoutError:
            await stop_process(self.process)
            raise PeerError(f"SIPp {self.scenario} still running after {seconds} s") from None

    def messages(self) -> str:
        """SIPp's message trace (everything it sent and received)."""
        trace = self.directory / "messages.log"
        return trace.read_text(errors="replace") if trace.exists() else ""

    def received_requests(self, method: str) -> list[str]:
        """The requests of this method SIPp received, from its message trace, as text."""
        blocks = self.messages().split("\n\n----------------------------------------------")
        found = []
        for block in blocks:
            if "message received" not in block:
                continue
            body = block.split("message received", 1)[1]
            start = body.find(f"{method} sip")
            if start >= 0 and body[start:].split("\n", 1)[0].endswith("SIP/2.0"):
                found.append(body[start:])
        return found

    def errors(self) -> str:
        log = self.directory / "errors.log"
        return log.read_text(errors="replace") if log.exists() else ""

    async def stop(self) -> None:
        await stop_process(self.process)


async def start_sipp(
    scenario: str,
    directory: Path,
    *,
    rtp_echo: bool = False,
    calls: int = 1,
    transport: Protocol = "udp",
    timeout_seconds: int = 30,
    receive_timeout_seconds: int = 15,
    extra_arguments: Sequence[str] = (),
) -> SippPeer:
    """Start SIPp with ``scenarios/<scenario>.xml`` as a callee on free ports in ``directory``.

    The scenario's play_pcap_audio files (``announcement.pcap``, ``dtmf.pcap``) are looked up in
    ``directory``, which is SIPp's working directory.
    """
    if shutil.which("sipp") is None:
        raise PeerError("sipp is not installed (Debian package sip-tester)")
    directory.mkdir(parents=True, exist_ok=True)
    scenario_path = SCENARIOS / f"{scenario}.xml"
    last_error: PeerError | None = None
    for _ in range(3):
        sip_port = free_port()
        media_port = free_port_pair()
        arguments = [
            "sipp", "-sf", str(scenario_path),
            "-i", LOOPBACK, "-p", str(sip_port),
            "-mi", LOOPBACK, "-mp", str(media_port),
            "-t", "u1" if transport == "udp" else "t1",
            "-m", str(calls),
            "-timeout", f"{timeout_seconds}s", "-timeout_error",
            "-recv_timeout", str(receive_timeout_seconds * 1000),
            "-trace_msg", "-message_file", str(directory / "messages.log"),
            "-trace_err", "-error_file", str(directory / "errors.log"),
            "-nostdin",
            *(["-rtp_echo"] if rtp_echo else []),
            *extra_arguments,
        ]  # fmt: skip
        with (directory / "sipp.out").open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *arguments,
                cwd=directory,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await wait_listening(process, sip_port, transport)
        except PeerError as error:
            await stop_process(process)
            last_error = error
            continue
        return SippPeer(process, sip_port, media_port, directory, scenario)
    output_text = (directory / "sipp.out").read_text(errors="replace")[-2000:]
    raise PeerError(f"SIPp did not start: {last_error}\n{output_text}")


@contextlib.asynccontextmanager
async def sipp(scenario: str, directory: Path, **options: object) -> AsyncIterator[SippPeer]:
    """``async with sipp("busy", tmp_path) as peer:`` — started, and stopped by PID on exit."""
    peer = await start_sipp(scenario, directory, **options)  # type: ignore[arg-type]
    try:
        yield peer
    finally:
        await peer.stop()


# --------------------------------------------------------------------------------------------
# Kamailio


@dataclass(frozen=True)
class SipUser:
    username: str
    password: str


@dataclass
class KamailioPeer:
    process: asyncio.subprocess.Process
    port: int
    directory: Path
    domain: str = LOOPBACK

    def log(self) -> str:
        path = self.directory / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def stop(self) -> None:
        await stop_process(self.process, whole_group=True)


def _kamailio_module_path() -> Path:
    for candidate in (
        Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
        Path("/usr/lib/aarch64-linux-gnu/kamailio/modules"),
        Path("/usr/lib/kamailio/modules"),
        Path("/usr/local/lib64/kamailio/modules"),
    ):
        if (candidate / "tm.so").exists():
            return candidate
    for found in Path("/usr/lib").glob("**/kamailio/modules/tm.so"):
        return found.parent
    raise PeerError("Kamailio modules not found (Debian package kamailio)")


def _write_dbtext(directory: Path, users: Sequence[SipUser], domain: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "version").write_text("table_name(str) table_version(int)\nsubscriber:7\n")
    lines = ["id(int,auto) username(str) domain(str) password(str) ha1(str,null) ha1b(str,null)"]
    for index, user in enumerate(users, start=1):
        lines.append(f"{index}:{user.username}:{domain}:{user.password}::")
    (directory / "subscriber").write_text("\n".join(lines) + "\n")


async def start_kamailio(
    directory: Path,
    users: Sequence[SipUser],
    *,
    challenge: Literal["www", "proxy"] = "www",
) -> KamailioPeer:
    """Kamailio as registrar + proxy on a free UDP/TCP port, digest users from db_text."""
    if shutil.which("kamailio") is None:
        raise PeerError("kamailio is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    _write_dbtext(directory / "dbtext", users, LOOPBACK)
    run_directory = directory / "run"
    run_directory.mkdir(exist_ok=True)
    module_path = _kamailio_module_path()
    last_error: PeerError | None = None
    for _ in range(3):
        port = free_port()
        arguments = [
            "kamailio", "-DD", "-E", "-Y", str(run_directory),
            "-f", str(KAMAILIO_CONFIG), "-L", str(module_path),
            "-l", f"udp:{LOOPBACK}:{port}", "-l", f"tcp:{LOOPBACK}:{port}",
            "-m", "32", "-M", "8", "-n", "2",
            "-A", f'DBURL="text://{directory / "dbtext"}"',
            *(["-A", "WITH_PROXY_CHALLENGE"] if challenge == "proxy" else []),
        ]  # fmt: skip
        with (directory / "kamailio.log").open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                *arguments,
                cwd=directory,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its workers go with it (see stop_process)
            )
        try:
            await wait_listening(process, port, "udp")
        except PeerError as error:
            await stop_process(process, whole_group=True)
            last_error = error
            continue
        return KamailioPeer(process, port, directory)
    log_text = (directory / "kamailio.log").read_text(errors="replace")[-3000:]
    raise PeerError(f"Kamailio did not start: {last_error}\n{log_text}")


@contextlib.asynccontextmanager
async def kamailio(
    directory: Path, users: Sequence[SipUser], *, challenge: Literal["www", "proxy"] = "www"
) -> AsyncIterator[KamailioPeer]:
    peer = await start_kamailio(directory, users, challenge=challenge)
    try:
        yield peer
    finally:
        await peer.stop()


# --------------------------------------------------------------------------------------------
# baresip


@dataclass
class BaresipPeer:
    process: asyncio.subprocess.Process
    sip_port: int
    directory: Path
    username: str
    recordings: Path = field(init=False)

    def __post_init__(self) -> None:
        self.recordings = self.directory / "recordings"

    def log(self) -> str:
        path = self.directory / "baresip.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def received_wavs(self) -> list[Path]:
        """WAV files sndfile wrote with the audio baresip decoded from us."""
        return sorted(self.recordings.glob("dump-*-dec.wav"))

    async def stop(self) -> None:
        await stop_process(self.process)


async def start_baresip(
    directory: Path,
    play_wav: Path,
    *,
    username: str = "baresip",
    registrar: tuple[str, int] | None = None,
    password: str = "",
) -> BaresipPeer:
    """An auto-answering baresip on a free port that plays ``play_wav`` to every caller.

    With ``registrar`` it registers ``username`` there (digest ``password``); otherwise it takes
    calls sent straight to ``sip:<username>@127.0.0.1:<sip_port>``.
    """
    if shutil.which("baresip") is None:
        raise PeerError("baresip is not installed (Debian package baresip-core)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "recordings").mkdir(exist_ok=True)
    last_error: PeerError | None = None
    for _ in range(3):
        port = free_port()
        media_base = free_port_pair()
        config = "\n".join(
            [
                "poll_method epoll",
                f"sip_listen {LOOPBACK}:{port}",
                "sip_transports udp",
                f"net_interface {LOOPBACK}",
                f"rtp_ports {media_base}-{media_base + 3}",
                "audio_player aubridge,nowhere",
                f"audio_source aufile,{play_wav}",
                "audio_alert aubridge,nowhere",
                "audio_srate 8000",
                "audio_channels 1",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_app account.so",
                f"snd_path {directory / 'recordings'}",
                "call_max_calls 4",
                "",
            ]
        )
        (directory / "config").write_text(config)
        if registrar is None:
            account = f"<sip:{username}@{LOOPBACK}:{port}>;regint=0;answermode=auto"
        else:
            host, registrar_port = registrar
            account = (
                f"<sip:{username}@{host}:{registrar_port};transport=udp>"
                f";auth_pass={password};answermode=auto;regint=300"
            )
        (directory / "accounts").write_text(account + ";audio_codecs=PCMU,PCMA\n")
        with (directory / "baresip.log").open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                "baresip", "-f", str(directory), "-v",
                cwd=directory,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        try:
            await wait_listening(process, port, "udp")
        except PeerError as error:
            await stop_process(process)
            last_error = error
            continue
        return BaresipPeer(process, port, directory, username)
    log_text = (directory / "baresip.log").read_text(errors="replace")[-3000:]
    raise PeerError(f"baresip did not start: {last_error}\n{log_text}")


async def wait_for_log(read: object, text: str, seconds: float = 10.0) -> None:
    """Poll a peer's log (``read()`` returns it) until ``text`` appears."""
    assert callable(read)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while text not in read():
        if loop.time() > deadline:
            raise PeerError(f"{text!r} not seen in the peer's log after {seconds} s")
        await asyncio.sleep(0.05)


# --------------------------------------------------------------------------------------------
# audio checks


def g711_ulaw_round_trip(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """What a PCMU hop does to the samples (our own G.711, independent of sip.media)."""
    return ulaw_to_linear(linear_to_ulaw(samples))


def best_correlation(
    reference: npt.NDArray[np.int16],
    received: npt.NDArray[np.int16],
    *,
    minimum_overlap: int = SAMPLE_RATE // 2,
) -> tuple[float, int]:
    """The highest normalised cross-correlation of ``received`` against ``reference`` over all
    lags (``received`` delayed by ``lag`` samples), and that lag. The overlap at a lag must be
    at least ``minimum_overlap`` samples."""
    x = reference.astype(np.float64)
    y = received.astype(np.float64)
    if x.size == 0 or y.size == 0:
        return 0.0, 0
    size = 1 << math.ceil(math.log2(x.size + y.size))
    raw = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    best = (0.0, 0)
    for index in np.argsort(np.abs(raw))[::-1][:20]:
        # indices below y.size are delays of ``received``; the rest (from size - x.size + 1
        # on, never overlapping them since size >= x.size + y.size) are leads
        lag = int(index) if index < y.size else int(index) - size
        if lag >= 0:
            length = min(x.size, y.size - lag)
            a, b = x[:length], y[lag : lag + length]
        else:
            length = min(x.size + lag, y.size)
            a, b = x[-lag : -lag + length], y[:length]
        if length < minimum_overlap:
            continue
        energy = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
        if energy == 0:
            continue
        value = float(np.dot(a, b)) / energy
        if value > best[0]:
            best = (value, lag)
    return best


def chunked_correlation(
    reference: npt.NDArray[np.int16],
    received: npt.NDArray[np.int16],
    *,
    chunk_samples: int = SAMPLE_RATE // 4,
) -> float:
    """The median, over 250 ms chunks of ``reference``, of each chunk's best correlation with
    ``received`` at its own lag. High when the audio arrived intact even if the timeline slipped
    by a frame or two somewhere (an event loop stalled on a loaded machine); low for audio that
    is missing or garbled. Silent chunks of the reference are left out."""
    values: list[float] = []
    for start in range(0, reference.size - chunk_samples + 1, chunk_samples):
        chunk = reference[start : start + chunk_samples]
        if float(np.abs(chunk.astype(np.float64)).mean()) < 50:
            continue
        values.append(best_correlation(chunk, received, minimum_overlap=chunk_samples)[0])
    return float(np.median(values)) if values else 0.0


def tone_fraction(samples: npt.NDArray[np.int16], frequency: float) -> float:
    """Share of the signal's energy within ±20 Hz of ``frequency``."""
    if samples.size == 0:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE)
    total = float(spectrum.sum())
    if total == 0:
        return 0.0
    band = (frequencies > frequency - 20) & (frequencies < frequency + 20)
    return float(spectrum[band].sum()) / total


def pcm_to_samples(pcm: bytes) -> npt.NDArray[np.int16]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16)


# --------------------------------------------------------------------------------------------
# TLS material


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    certificate_file: Path
    key_file: Path


def make_certificates(directory: Path, host: str = LOOPBACK) -> Certificates:
    """A throw-away CA and a server certificate it signed for ``host`` (IP SAN) and localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dialer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    result = Certificates(directory / "ca.pem", directory / "server.pem", directory / "key.pem")
    result.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    result.certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return result
