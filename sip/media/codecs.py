"""Audio codecs behind one tiny interface, and the static G.711 payload types.

Every codec turns 16-bit little-endian mono PCM into an RTP payload and back. ``PCMU``
(μ-law, payload type 0) and ``PCMA`` (A-law, payload type 8) are the two we speak;
``codec_for_payload_type`` and ``codec_by_name`` look them up.

The G.711 codecs run on the ``audioop`` C functions when the interpreter has them (the standard
library up to Python 3.12, the ``audioop-lts`` package from 3.13): per 20 ms frame they take a
fraction of the time of the numpy tables of :mod:`sip.media.g711`, and give the same bytes for
every input (the tests compare them over all 65536 samples and 256 codes). Without ``audioop``
the tables do the work.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sip.media import g711

SAMPLE_RATE = 8000
FRAME_DURATION = 0.020
SAMPLES_PER_FRAME = 160
FRAME_BYTES = SAMPLES_PER_FRAME * 2
SILENCE_FRAME = bytes(FRAME_BYTES)
_SAMPLE_INDEX = np.dtype("<u2")


def _load_audioop() -> ModuleType | None:
    """The ``audioop`` module (deprecated in 3.11-3.12, a package from 3.13), or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop
        except ImportError:
            return None
    return audioop


_AUDIOOP = _load_audioop()


class Codec(Protocol):
    """What the media engine needs from a codec."""

    @property
    def name(self) -> str:
        """Encoding name as in SDP ``a=rtpmap`` (e.g. ``"PCMU"``)."""
        ...

    @property
    def payload_type(self) -> int:
        """Static RTP payload type."""
        ...

    @property
    def clock_rate(self) -> int:
        """RTP clock rate in Hz."""
        ...

    @property
    def silence_payload(self) -> bytes:
        """Payload of one 20 ms frame of digital silence."""
        ...

    def encode(self, pcm16: bytes) -> bytes:
        """16-bit little-endian mono PCM to an RTP payload."""
        ...

    def decode(self, payload: bytes) -> bytes:
        """RTP payload to 16-bit little-endian mono PCM."""
        ...


@dataclass(frozen=True)
class G711Codec:
    """A G.711 law (μ or A): ``audioop`` when available, else numpy lookup tables."""

    name: str
    payload_type: int
    encode_table: npt.NDArray[np.uint8] = field(repr=False)
    decode_planes: tuple[bytes, bytes] = field(repr=False)
    clock_rate: int = SAMPLE_RATE
    silence_payload: bytes = field(init=False, repr=False)
    _fast_encode: Callable[[bytes, int], bytes] | None = field(
        init=False, repr=False, compare=False
    )
    _fast_decode: Callable[[bytes, int], bytes] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        fast_encode = fast_decode = None
        # audioop works on native-endian samples; our PCM is little-endian
        if _AUDIOOP is not None and sys.byteorder == "little" and self.name in ("PCMU", "PCMA"):
            law = "ulaw" if self.name == "PCMU" else "alaw"
            fast_encode = getattr(_AUDIOOP, f"lin2{law}")
            fast_decode = getattr(_AUDIOOP, f"{law}2lin")
        object.__setattr__(self, "_fast_encode", fast_encode)
        object.__setattr__(self, "_fast_decode", fast_decode)
        object.__setattr__(self, "silence_payload", self.encode(SILENCE_FRAME))

    def encode(self, pcm16: bytes) -> bytes:
        """16-bit little-endian PCM to one code byte per sample (``ValueError`` if odd)."""
        fast_encode = self._fast_encode
        if fast_encode is not None:
            if len(pcm16) & 1:
                raise ValueError("PCM size must be a multiple of element size (2 bytes)")
            return fast_encode(pcm16, 2)
        return self.table_encode(pcm16)

    def decode(self, payload: bytes) -> bytes:
        """Code bytes to 16-bit little-endian PCM."""
        fast_decode = self._fast_decode
        if fast_decode is not None:
            return fast_decode(payload, 2)
        return self.table_decode(payload)

    def table_encode(self, pcm16: bytes) -> bytes:
        """``encode`` with the numpy table (the reference the fast path is tested against)."""
        return self.encode_table.take(np.frombuffer(pcm16, dtype=_SAMPLE_INDEX)).tobytes()

    def table_decode(self, payload: bytes) -> bytes:
        """``decode`` with the byte-plane tables (the reference the fast path is tested against)."""
        pcm = bytearray(2 * len(payload))
        pcm[0::2] = payload.translate(self.decode_planes[0])
        pcm[1::2] = payload.translate(self.decode_planes[1])
        return bytes(pcm)


PCMU = G711Codec("PCMU", 0, g711.ULAW_ENCODE_TABLE, g711.ULAW_DECODE_PLANES)
PCMA = G711Codec("PCMA", 8, g711.ALAW_ENCODE_TABLE, g711.ALAW_DECODE_PLANES)

_BY_PAYLOAD_TYPE: Mapping[int, G711Codec] = MappingProxyType(
    {PCMU.payload_type: PCMU, PCMA.payload_type: PCMA}
)
_BY_NAME: Mapping[str, G711Codec] = MappingProxyType({PCMU.name: PCMU, PCMA.name: PCMA})


def sized_decoder(codec: Codec) -> Callable[[bytes, int], bytes]:
    """``codec``'s decoder as ``function(payload, 2)``: the ``audioop`` C function itself when
    the codec runs on it (one Python call less per packet), else a wrapper of ``decode``."""
    if isinstance(codec, G711Codec) and codec._fast_decode is not None:
        return codec._fast_decode
    decode = codec.decode

    def decode_sized(payload: bytes, _sample_width: int) -> bytes:
        return decode(payload)

    return decode_sized


def codec_for_payload_type(payload_type: int) -> Codec:
    """The codec with this static payload type; ``ValueError`` if we do not speak it."""
    try:
        return _BY_PAYLOAD_TYPE[payload_type]
    except KeyError:
        raise ValueError(f"unsupported audio payload type {payload_type}") from None


def codec_by_name(name: str) -> Codec:
    """The codec with this SDP encoding name (case-insensitive); ``ValueError`` if unknown."""
    try:
        return _BY_NAME[name.upper()]
    except KeyError:
        raise ValueError(f"unsupported codec {name!r}") from None
