"""``dialer serve``: the web server (uvicorn) on the configured or embedded default settings."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="start the web server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--certfile", help="TLS certificate (PEM); enables HTTPS")
    serve.add_argument("--keyfile", help="TLS private key (PEM)")
    serve.set_defaults(handler=_serve)


def _serve(arguments: argparse.Namespace) -> int:
    import uvicorn

    from web.app import create_app
    from web.settings import load_web_settings

    settings = load_web_settings()
    app = create_app(settings)
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        ssl_certfile=arguments.certfile,
        ssl_keyfile=arguments.keyfile,
        log_level="info",
    )
    return 0
