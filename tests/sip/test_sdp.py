"""Session descriptions and offer/answer (sip.sdp)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sip.errors import LocalProtocolError, RemoteProtocolError, SdpError
from sip.message import parse_message
from sip.sdp import (
    Connection,
    NegotiatedMedia,
    answer_direction,
    build_answer,
    build_offer,
    is_hold,
    negotiate,
    parse_sdp,
)

CAPTURES = Path(__file__).parent / "captures"


def body_of(name: str) -> bytes:
    return parse_message((CAPTURES / name).read_bytes()).body


def test_sdp_error_is_a_488_remote_protocol_error() -> None:
    error = SdpError("nope")
    assert isinstance(error, RemoteProtocolError)
    assert error.status_code == 488


@pytest.mark.parametrize(
    "name",
    [
        "asterisk_invite_sdp.sip",
        "kamailio_200_record_route.sip",
        "baresip_reinvite_sendonly.sip",
        "old_style_hold_invite.sip",
    ],
)
def test_captured_descriptions_round_trip(name: str) -> None:
    body = body_of(name)
    description = parse_sdp(body)
    assert bytes(description) == body


def test_asterisk_offer_fields() -> None:
    description = parse_sdp(body_of("asterisk_invite_sdp.sip"))
    assert description.origin.session_id == 1708421374
    assert description.origin.address == "198.51.100.20"
    assert description.session_name == "Asterisk"
    assert description.connection == Connection("198.51.100.20")
    (audio,) = description.media
    assert audio.port == 14586
    assert audio.payload_types == [0, 8, 101]
    mapping = audio.rtpmap(101)
    assert mapping is not None
    assert mapping.encoding_name == "telephone-event"
    assert audio.fmtp(101) == "0-16"
    assert audio.ptime == 20
    assert audio.attribute("maxptime") == "150"
    assert description.direction_for(audio) == "sendrecv"


def test_static_payload_types_without_rtpmap() -> None:
    description = parse_sdp(
        b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 8 0\n"
    )
    media = negotiate(description)
    assert (media.payload_type, media.codec_name, media.clock_rate) == (8, "PCMA", 8000)
    assert media.telephone_event_payload is None
    assert media.ptime == 20
    assert media.direction == "sendrecv"
    assert not media.on_hold


def test_build_offer_default_shape() -> None:
    offer = build_offer("192.0.2.10", 40000, session_id=7, version=3)
    description = parse_sdp(offer)
    assert offer.endswith(b"\r\n")
    assert b"\n" not in offer.replace(b"\r\n", b"")
    assert description.origin.session_id == 7
    assert description.origin.session_version == 3
    assert description.connection == Connection("192.0.2.10", "IN", "IP4")
    (audio,) = description.media
    assert audio.media == "audio"
    assert audio.port == 40000
    assert audio.protocol == "RTP/AVP"
    assert audio.formats == ("0", "8", "101")
    mapping = audio.rtpmap(101)
    assert mapping is not None
    assert (mapping.encoding_name, mapping.clock_rate) == ("telephone-event", 8000)
    assert audio.fmtp(101) == "0-16"
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"


def test_build_offer_options() -> None:
    offer = build_offer("2001:db8::5", 5004, ("PCMA",), telephone_event=False, direction="sendonly")
    description = parse_sdp(offer)
    assert description.connection == Connection("2001:db8::5", "IN", "IP6")
    (audio,) = description.media
    assert audio.formats == ("8",)
    assert audio.direction == "sendonly"
    assert is_hold(offer)
    with pytest.raises(LocalProtocolError):
        build_offer("192.0.2.1", 4000, ("OPUS",))


def test_answer_picks_first_offered_codec_we_support() -> None:
    offer = body_of("old_style_hold_invite.sip")  # offers G729, PCMU, telephone-event
    answer = build_answer(offer, "192.0.2.5", 30000, ("PCMA", "PCMU"), session_id=9)
    description = parse_sdp(answer)
    (audio,) = description.media
    assert audio.formats == ("0", "101")
    assert audio.port == 30000
    assert audio.fmtp(101) == "0-15"  # the events the offerer can handle
    negotiated = negotiate(answer)
    assert negotiated.codec_name == "PCMU"
    assert negotiated.telephone_event_payload == 101


def test_answer_keeps_offerers_telephone_event_number() -> None:
    offer = build_offer("192.0.2.10", 40000).replace(b"101", b"96")
    answer = build_answer(offer, "192.0.2.5", 30000)
    assert negotiate(answer).telephone_event_payload == 96


def test_answer_follows_offer_order_not_ours() -> None:
    offer = build_offer("192.0.2.10", 40000, ("PCMA", "PCMU"))
    answer = build_answer(offer, "192.0.2.5", 30000, ("PCMU", "PCMA"))
    assert negotiate(answer).codec_name == "PCMA"
    assert negotiate(offer, ("PCMU", "PCMA")).codec_name == "PCMA"


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("sendrecv", "inactive", "inactive"),
    ],
)
def test_answer_direction(offered: str, wanted: str, expected: str) -> None:
    assert answer_direction(offered, wanted) == expected  # type: ignore[arg-type]
    offer = build_offer("192.0.2.10", 40000, direction=offered)  # type: ignore[arg-type]
    answer = build_answer(offer, "192.0.2.5", 30000, direction=wanted)  # type: ignore[arg-type]
    assert negotiate(answer).direction == expected


def test_answer_to_hold_reinvite_is_recvonly() -> None:
    offer = body_of("baresip_reinvite_sendonly.sip")
    answer = build_answer(offer, "127.0.0.1", 30000)
    assert negotiate(answer).direction == "recvonly"
    assert negotiate(offer).on_hold


def test_answer_to_old_style_hold_does_not_send() -> None:
    offer = body_of("old_style_hold_invite.sip")
    negotiated = negotiate(offer)
    assert negotiated.address == "0.0.0.0"
    assert negotiated.on_hold
    assert not negotiated.we_send
    assert is_hold(offer)
    answer = build_answer(offer, "192.0.2.5", 30000)
    assert negotiate(answer).direction == "recvonly"


def test_answer_rejects_other_streams_with_port_zero() -> None:
    offer = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        b"m=audio 4000 RTP/AVP 9 8\r\n"
        b"m=audio 4002 RTP/AVP 0\r\n"
    )
    description = parse_sdp(build_answer(offer, "192.0.2.5", 30000))
    assert [(m.media, m.port) for m in description.media] == [
        ("video", 0),
        ("audio", 30000),
        ("audio", 0),
    ]
    assert description.media[1].formats == ("8",)


def test_answer_without_common_codec_is_488() -> None:
    offer = build_offer("192.0.2.10", 40000, ("G722",))
    with pytest.raises(SdpError) as raised:
        build_answer(offer, "192.0.2.5", 30000)
    assert raised.value.status_code == 488
    with pytest.raises(SdpError):
        negotiate(offer)


def test_media_level_connection_and_direction_override_session_level() -> None:
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=inactive\r\n"
        b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.77\r\na=sendrecv\r\na=ptime:30\r\n"
    )
    negotiated = negotiate(sdp)
    assert negotiated == NegotiatedMedia("192.0.2.77", 4000, 0, "PCMU", 8000, None, "sendrecv", 30)
    assert not negotiated.on_hold
    assert not is_hold(sdp)


def test_session_level_direction_applies_to_media() -> None:
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    assert negotiate(sdp).direction == "sendonly"
    assert is_hold(sdp)


def test_inactive_is_hold() -> None:
    offer = build_offer("192.0.2.10", 40000, direction="inactive")
    assert is_hold(offer)
    negotiated = negotiate(offer)
    assert negotiated.on_hold
    assert not negotiated.we_send
    assert not negotiated.we_receive


def test_missing_connection_address() -> None:
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    with pytest.raises(SdpError):
        negotiate(sdp)


@pytest.mark.parametrize(
    "sdp",
    [
        b"",
        b"o=- 1 1 IN IP4 192.0.2.1\r\n",
        b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
        b"v=0\r\ns=-\r\n",
        b"v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n",
        b"v=0\r\no=- 1 1 IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 1.2.3.4;rm -rf\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nthis is not sdp\r\n",
        b"v=0\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\na=\r\n",
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n" + b"a=x\r\n" * 20000,
    ],
)
def test_invalid_descriptions(sdp: bytes) -> None:
    with pytest.raises(SdpError):
        parse_sdp(sdp)


def test_bare_lf_and_blank_lines_tolerated() -> None:
    sdp = (
        b"v=0\n\no=- 1 1 IN IP4 192.0.2.1\ns=\nc=IN IP4 192.0.2.1 \nt=0 0\nm=audio 4000 RTP/AVP 0\n"
    )
    assert negotiate(sdp).address == "192.0.2.1"


def test_rtpmap_with_channels_and_unknown_dynamic_codecs() -> None:
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 111 97 8\r\na=rtpmap:111 opus/48000/2\r\n"
        b"a=rtpmap:97 PCMU/8000/2\r\na=rtpmap:bad\r\n"
    )
    description = parse_sdp(sdp)
    mapping = description.media[0].rtpmap(111)
    assert mapping is not None
    assert mapping.channels == 2
    assert str(mapping) == "111 opus/48000/2"
    assert description.media[0].rtpmap(97) is not None
    assert negotiate(sdp).payload_type == 8  # stereo PCMU is not something we can play
