"""Seeded mutation fuzzing: malformed input only ever raises the documented parse errors.

Every parser of the message layer is fed thousands of mutated versions of valid input. A
mutation either parses (then it must serialise and parse back to the same thing) or raises
MessageParseError / SdpError / DigestError. Any other exception (IndexError, ValueError,
UnicodeDecodeError...) fails the test with the seed that reproduces it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from pathlib import Path

from sip.digest import choose_challenge, parse_authorization, parse_challenge
from sip.errors import DigestError, MessageParseError, SdpError
from sip.message import Message, StreamFramer, cseq, from_header, parse_message, to_header, top_via
from sip.sdp import build_answer, is_hold, negotiate, parse_sdp
from sip.uri import parse_name_address, parse_uri, parse_via

CAPTURES = sorted((Path(__file__).parent / "captures").glob("*.sip"))
SEED = 0x5EED

_INTERESTING = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%zz",
    b"[",
    b"]",
    b"@",
    b"=",
    b"?",
    b"/",
    b"\xff\xfe",
    b"\xc3",
    b"\xe2\x82\xac",
    b"99999999999999999999",
    b"-1",
    b"0",
    b"\r\n\r\n",
    b"\r\n ",
    b"SIP/2.0",
    b"Content-Length: 5\r\n",
    b"l: 99999\r\n",
    b"Via: SIP/2.0/UDP [::1\r\n",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Apply one to four random mutations."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(8)
        position = rng.randrange(len(buffer) + 1)
        if choice == 0 and buffer:
            buffer[min(position, len(buffer) - 1)] = rng.randrange(256)
        elif choice == 1:
            buffer[position:position] = rng.choice(_INTERESTING)
        elif choice == 2:
            del buffer[position : position + rng.randint(1, 40)]
        elif choice == 3:
            chunk = buffer[position : position + rng.randint(1, 80)]
            buffer[position:position] = chunk
        elif choice == 4:
            del buffer[position:]
        elif choice == 5:
            lines = bytes(buffer).split(b"\r\n")
            rng.shuffle(lines)
            buffer = bytearray(b"\r\n".join(lines))
        elif choice == 6 and buffer:
            index = min(position, len(buffer) - 1)
            if chr(buffer[index]).isdigit():
                buffer[index : index + 1] = str(rng.choice([0, 65536, 2**31, 10**12])).encode()
            else:
                buffer[index] ^= 0x20  # flip letter case
        else:
            buffer[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buffer)


def exercise(message: Message) -> None:
    """Use every helper the upper layers use; only the documented errors may come out."""
    for name, _ in message.headers.items():
        message.headers.get_all(name)
    for helper in (top_via, from_header, to_header, cseq):
        with contextlib.suppress(MessageParseError):
            helper(message)
    for name in ("Contact", "Route", "Record-Route"):
        for value in message.headers.get_all(name):
            with contextlib.suppress(MessageParseError):
                parse_name_address(value)
    challenges = message.headers.get_all("WWW-Authenticate") + message.headers.get_all(
        "Proxy-Authenticate"
    )
    if challenges:
        with contextlib.suppress(DigestError):
            choose_challenge(challenges)
    if message.body:
        try:
            is_hold(message.body)
            negotiate(message.body)
            build_answer(message.body, "192.0.2.1", 4000)
        except SdpError:
            pass


def run_cases(count: int, make_case: Callable[[random.Random], None]) -> None:
    """Run ``count`` cases, each with its own seed; any other exception names its seed."""
    for index in range(count):
        seed = SEED + index
        try:
            make_case(random.Random(seed))
        except (MessageParseError, SdpError, DigestError):
            continue
        except Exception as error:
            error.add_note(f"reproduce with random.Random({seed})")
            raise


def test_parse_message_mutations() -> None:
    samples = [path.read_bytes() for path in CAPTURES]
    parsed = 0

    def case(rng: random.Random) -> None:
        nonlocal parsed
        data = mutate(rng.choice(samples), rng)
        message = parse_message(data)
        parsed += 1
        serialised = bytes(message)
        assert bytes(parse_message(serialised)) == serialised, f"unstable for {data!r}"
        exercise(message)

    run_cases(4000, case)
    # The fuzzer must reach the success path too, or it tests only the first checks.
    assert parsed > 400


def test_stream_framer_mutations() -> None:
    samples = [path.read_bytes() for path in CAPTURES]

    def case(rng: random.Random) -> None:
        stream = b"".join(rng.choice(samples) for _ in range(3))
        data = mutate(stream, rng)
        framer = StreamFramer()
        position = 0
        while position < len(data):
            size = rng.randint(1, 500)
            for message in framer.feed(data[position : position + size]):
                serialised = bytes(message)
                assert bytes(parse_message(serialised, validate=False)) == serialised
            position += size

    run_cases(800, case)


def test_uri_and_via_mutations() -> None:
    texts = [
        "sip:alice:pw@[2001:db8::1]:5061;transport=tls;lr?subject=x&y=z",
        "sips:%61lice@example.com;user=phone",
        "tel:+1-201-555-0123;phone-context=example.com",
        '"A \\"B\\" C" <sip:alice@atlanta.com;lr>;tag=1;+sip.instance="<urn:x>"',
        "sip:bob@192.0.2.4:5060;tag=x",
        "SIP/2.0/UDP [2001:db8::9]:5070;rport=1;received=::1;branch=z9hG4bK1",
        "SIP/2.0/TCP host.example.com;branch=z9hG4bK2;maddr=224.0.0.1;ttl=1",
    ]

    def case(rng: random.Random) -> None:
        text = mutate(rng.choice(texts).encode(), rng).decode("utf-8", "surrogateescape")
        for parser in (parse_uri, parse_name_address, parse_via):
            try:
                result = parser(text)
            except MessageParseError:
                continue
            assert parser(str(result)) == result, f"{parser.__name__} round trip of {text!r}"

    run_cases(3000, case)


def test_sdp_mutations() -> None:
    bodies = [parse_message(path.read_bytes()).body for path in CAPTURES]
    bodies = [body for body in bodies if body]

    def case(rng: random.Random) -> None:
        data = mutate(rng.choice(bodies), rng)
        description = parse_sdp(data)
        serialised = bytes(description)
        assert bytes(parse_sdp(serialised)) == serialised, f"unstable for {data!r}"
        is_hold(description)
        negotiate(description)
        build_answer(description, "192.0.2.1", 4000, direction="sendonly")

    run_cases(2000, case)


def test_digest_mutations() -> None:
    values = [
        'Digest realm="voip.example.net", nonce="ZWQ5", algorithm=SHA-256, qop="auth", '
        'opaque="x", stale=TRUE',
        "Digest realm=asterisk,nonce=abc,qop=auth,auth-int",
        'Digest username="u", realm="r", nonce="n", uri="sip:x", response="abc", qop=auth, '
        'nc=00000001, cnonce="c", algorithm=MD5-sess',
    ]

    def case(rng: random.Random) -> None:
        text = mutate(rng.choice(values).encode(), rng).decode("utf-8", "surrogateescape")
        with contextlib.suppress(DigestError):
            parse_challenge(text)
        parse_authorization(text)

    run_cases(2000, case)
