"""Settings of the domain core, read from the environment.

=========================  ===========================================  ==========================
variable                   meaning                                      default
=========================  ===========================================  ==========================
DIALER_DATA_DIR            directory of the database, secret, backups   ./data
DIALER_DATABASE_URL        SQLAlchemy async URL                         sqlite+aiosqlite:///<data>/dialer.db
DIALER_RECORDINGS_DIR      where call recordings are kept               <data>/recordings
DIALER_DEFAULT_REGION      region for numbers typed without +code       RU
DIALER_CALLING_WINDOW      hours a callee may be called, in the         (none: any time)
                           callee's local time, e.g. 09:00-21:00 or
                           mon-fri 08:00-22:00; sat-sun 09:00-20:00
=========================  ===========================================  ==========================

With a calling window, a call to a number whose time zone is known (the contact's, else the one
the number's range has) is refused outside those hours; see :mod:`dialer.calling_window`.

The secret key (``<data_dir>/secret.key``, mode 0600) is made on first use; it derives the key
that encrypts TOTP secrets at rest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dialer.calling_window import CallingHours

SECRET_KEY_BYTES = 32


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    recordings_dir: Path
    default_region: str = "RU"
    # Outbound calls only inside these hours of the callee's local time (None: any time).
    calling_window: CallingHours | None = None
    # Per login name: lock after this many consecutive failures, for this long.
    lockout_threshold: int = 10
    lockout_minutes: int = 15
    # Per login name: at most this many failures in a rolling hour window.
    max_failures_per_hour: int = 100
    # Per source IP: at most this many failures in an hour window (a whole office may share one).
    max_failures_per_source_per_hour: int = 300
    session_absolute_hours: int = 12
    session_idle_minutes: int = 30
    password_min_length: int = 8
    # argon2id cost; tests lower these to keep the suite fast.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    @property
    def secret_key_path(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    def secret_key(self) -> bytes:
        """The installation secret, created (0600) under data_dir on first use."""
        return load_or_create_secret_key(self.secret_key_path)


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from DIALER_* environment variables (see the module docstring)."""
    data_dir = Path(environ.get("DIALER_DATA_DIR", "./data")).absolute()
    database_url = environ.get("DIALER_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{data_dir / 'dialer.db'}"
    )
    recordings_dir = Path(environ.get("DIALER_RECORDINGS_DIR", str(data_dir / "recordings")))
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        recordings_dir=recordings_dir.absolute(),
        default_region=environ.get("DIALER_DEFAULT_REGION", "RU").upper(),
        calling_window=_calling_window(environ.get("DIALER_CALLING_WINDOW", "")),
    )


def _calling_window(text: str) -> CallingHours | None:
    """DIALER_CALLING_WINDOW: empty for none; a bad value stops the start with its reason."""
    if not text.strip():
        return None
    return CallingHours.parse(text)


def load_or_create_secret_key(path: Path) -> bytes:
    """Read the secret key file, creating it with fresh random bytes (mode 0600) if missing."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(SECRET_KEY_BYTES)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it between our read and create: use theirs.
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key.hex() + "\n")
    return key
