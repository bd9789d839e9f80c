"""Optional TOTP second factor; secrets encrypted at rest with Fernet.

The Fernet key is derived (HKDF-SHA256) from the installation secret ``Settings.secret_key()``.
"""

from __future__ import annotations

import base64
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dialer.settings import Settings

ISSUER = "dialer"


def _fernet(settings: Settings) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"dialer totp secrets"
    ).derive(settings.secret_key())
    return Fernet(base64.urlsafe_b64encode(derived))


def new_totp_secret() -> str:
    """A fresh random base32 secret."""
    return pyotp.random_base32()


def encrypt_totp_secret(settings: Settings, secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode("ascii")).decode("ascii")


def decrypt_totp_secret(settings: Settings, encrypted: str) -> str:
    """The base32 secret; ValueError if the token was made with another installation secret."""
    try:
        return _fernet(settings).decrypt(encrypted.encode("ascii")).decode("ascii")
    except InvalidToken as error:
        raise ValueError("TOTP secret cannot be decrypted with this installation's key") from error


def provisioning_uri(secret: str, login: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    return str(pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=ISSUER))


def totp_code_valid(secret: str, code: str, now: datetime) -> bool:
    """True if ``code`` is the code at ``now`` or one 30 s step either side."""
    digits = code.strip().replace(" ", "")
    if not digits.isdigit():
        return False
    return bool(pyotp.TOTP(secret).verify(digits, for_time=now, valid_window=1))


def totp_code_at(secret: str, now: datetime) -> str:
    """The code an authenticator shows at ``now`` (for tests and enrolment checks)."""
    return str(pyotp.TOTP(secret).at(now))
