"""Password hashing with argon2id (argon2-cffi).

A hash or a verification costs tens of milliseconds of CPU by design. Use cases running on the
server's event loop call the ``*_in_thread`` variants: argon2 releases the GIL, so the loop keeps
pacing every call's audio and pushing events while a login is checked.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dialer.errors import ValidationFailed
from dialer.settings import Settings

MAXIMUM_PASSWORD_LENGTH = 1024


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def password_hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher with the cost parameters of ``settings``."""
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


def check_password_policy(password: str, settings: Settings) -> None:
    """Raise ValidationFailed("password", ...) if the password is too short or too long."""
    if len(password) < settings.password_min_length:
        raise ValidationFailed(
            "password", f"must be at least {settings.password_min_length} characters"
        )
    if len(password) > MAXIMUM_PASSWORD_LENGTH:
        raise ValidationFailed("password", f"must be at most {MAXIMUM_PASSWORD_LENGTH} characters")


def hash_password(password: str, settings: Settings) -> str:
    """The argon2id hash of ``password`` (policy checked first)."""
    check_password_policy(password, settings)
    return password_hasher(settings).hash(password)


def verify_password(password_hash: str, password: str, settings: Settings) -> bool:
    """True if ``password`` matches; False for a mismatch or an unreadable hash."""
    try:
        return password_hasher(settings).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_in_thread(password: str, settings: Settings) -> str:
    """:func:`hash_password` on a worker thread."""
    check_password_policy(password, settings)
    return await asyncio.to_thread(password_hasher(settings).hash, password)


async def verify_password_in_thread(password_hash: str, password: str, settings: Settings) -> bool:
    """:func:`verify_password` on a worker thread."""
    return await asyncio.to_thread(verify_password, password_hash, password, settings)


def needs_rehash(password_hash: str, settings: Settings) -> bool:
    """True when the hash was made with other cost parameters than ``settings`` asks."""
    return password_hasher(settings).check_needs_rehash(password_hash)


def dummy_hash(settings: Settings) -> str:
    """A fixed-cost hash verified for unknown logins so they take as long as known ones."""
    return _dummy_hash(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("dummy password for timing")
