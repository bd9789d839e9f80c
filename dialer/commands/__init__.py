"""Sub-commands of ``dialer`` that belong to the domain core (database, users, audit, SIP).

Each module here exposes ``register(subparsers)``; ``register_all`` calls them in order. A command
handler takes the parsed ``argparse.Namespace`` and returns the process exit code.

Every module is imported to build the parser, also for ``dialer --help``: at load time a command
module imports only the standard library and light modules (settings, errors, enums); SQLAlchemy,
the models, numpy, Vosk and the like are imported inside the handlers, when the command runs
(``tests/dialer/test_cli_help.py`` checks). Shared exit codes and the one-session runner:
``dialer.commands.running``.
"""

from __future__ import annotations

import argparse
import importlib

# Modules are listed by name so an area can be added without touching the others.
_COMMAND_MODULES = (
    "dialer.commands.sip_commands",
    "dialer.commands.database_commands",
    "dialer.commands.exchange_commands",
    "dialer.commands.recordings_commands",
    "dialer.commands.report_commands",
    "dialer.commands.worker_commands",
)


def register_all(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
