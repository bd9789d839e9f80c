"""The ``dialer`` command line.

The entry point lives in ``web`` because ``web`` is the outermost layer: ``dialer serve`` needs the
web application, and imports flow ``web -> dialer -> {sip, recordings}``. Each area owns a module
that adds its sub-commands to the parser; this module only assembles them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

CommandRegistrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[CommandRegistrar]:
    registrars: list[CommandRegistrar] = []
    from dialer.commands import register_all as register_dialer_commands

    registrars.append(register_dialer_commands)
    from web.commands import register as register_web_commands

    registrars.append(register_web_commands)
    return registrars


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialer", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level.upper(), stream=sys.stderr)
    handler: Callable[[argparse.Namespace], int] = arguments.handler
    return handler(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
