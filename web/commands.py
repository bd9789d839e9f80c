"""``dialer serve``: the web server (uvicorn) on the configured or embedded default settings.

With ``--certfile`` and ``--keyfile`` uvicorn serves HTTPS itself, and session cookies get the
``Secure`` flag. Forwarded headers are ignored unless ``DIALER_TRUSTED_PROXIES`` lists the proxy
(the application decides, not uvicorn, so the rule lives in one place).

With ``--realtime-priority N`` the server runs under ``SCHED_FIFO`` at priority N (1-99), as
media servers do, so the media clock's ticks start on their deadlines on a busy machine (see
:mod:`sip.media.priority`; it needs root, ``CAP_SYS_NICE`` or ``ulimit -r``). Everything the
process does then runs ahead of normal work on the machine, page requests included.
"""

from __future__ import annotations

import argparse
import dataclasses


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="start the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--certfile", help="TLS certificate (PEM); enables HTTPS")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.add_argument(
        "--realtime-priority",
        type=int,
        metavar="N",
        help="run under SCHED_FIFO at priority N (1-99), as media servers do; needs root, "
        "CAP_SYS_NICE or ulimit -r",
    )
    serve.set_defaults(handler=_serve)


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from dialer.telephony.scheduling import SchedulingError, use_realtime_scheduling
    from web.app import create_app
    from web.settings import load_web_settings

    if bool(arguments.certfile) != bool(arguments.keyfile):
        print("dialer serve: --certfile and --keyfile go together")
        return 2
    if arguments.realtime_priority is not None:
        # before the app and uvicorn start any thread: they all inherit the policy
        try:
            use_realtime_scheduling(arguments.realtime_priority)
        except (ValueError, SchedulingError) as error:
            print(f"dialer serve: --realtime-priority: {error}")
            return 2
    settings = dataclasses.replace(
        load_web_settings(), upgrade_database_on_start=True, freeze_objects_after_start=True
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        ssl_certfile=arguments.certfile,
        ssl_keyfile=arguments.keyfile,
        proxy_headers=False,
        server_header=False,
        # Live events are small JSON messages fanned out to many sockets: compressing each
        # one per socket cost more than it saved (bench/events.py: p99 947 ms vs 144 ms).
        ws_per_message_deflate=False,
        # The sans-I/O websockets protocol costs about two thirds of the older implementation's
        # CPU per message (bench/events.py); pinned so that a deployment never falls back.
        ws="websockets-sansio",
        log_level="info",
    )
    return 0
