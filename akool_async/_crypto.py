"""AKOOL webhook cryptography (contract section 5): SHA-1 signature and AES-CBC payload cipher.

Pure functions shared by the webhook verifier and the emulator's webhook sender. The AES part
needs the optional ``cryptography`` package (``pip install '.[webhooks]'`` in a checkout); it is
imported lazily so that the core SDK does not depend on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

__all__ = ["CryptoError", "decrypt", "encrypt", "iv_for", "sign"]

_BLOCK = 16
_KEY_SIZES = frozenset({16, 24, 32})


class CryptoError(ValueError):
    """The ciphertext, key or padding is unusable (the verifier turns this into its own error).

    Attributes:
        reason: ``"base64"``, ``"padding"`` (not whole blocks, or bad PKCS#7), or ``"key"``.
    """

    def __init__(self, message: str, *, reason: str = "key") -> None:
        super().__init__(message)
        self.reason = reason


def sign(client_id: str, timestamp: object, nonce: object, data_encrypt: str) -> str:
    """Return the lowercase hex SHA-1 of the four fields sorted and joined (contract 5.3).

    ``timestamp`` and ``nonce`` may be ints or strings: both are signed in decimal string form.
    """
    parts = sorted([client_id, _decimal(timestamp), _decimal(nonce), data_encrypt])
    return hashlib.sha1("".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()


def _decimal(value: object) -> str:
    # bool is an int subclass; "True" is never a valid timestamp or nonce.
    if isinstance(value, bool):
        raise CryptoError("timestamp and nonce must be numbers or strings, not booleans")
    return str(value)


def iv_for(client_id: str) -> bytes:
    """The IV: the client id's UTF-8 bytes cut to 16 or right-padded with NUL bytes (5.4)."""
    raw = client_id.encode("utf-8")
    return raw[:_BLOCK].ljust(_BLOCK, b"\0")


def _cipher(client_id: str, client_secret: str) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "webhook decryption needs the 'cryptography' package: "
            "pip install cryptography (or pip install '.[webhooks]' in an akool-async checkout)"
        ) from exc
    key = client_secret.encode("utf-8")
    if len(key) not in _KEY_SIZES:
        raise CryptoError(f"the client secret must be 16, 24 or 32 bytes, not {len(key)}")
    return Cipher(algorithms.AES(key), modes.CBC(iv_for(client_id)))


def encrypt(plaintext: bytes, client_id: str, client_secret: str) -> str:
    """Encrypt ``plaintext`` as AKOOL does: PKCS#7 to 16 bytes, AES-CBC, standard Base64."""
    pad = _BLOCK - len(plaintext) % _BLOCK
    encryptor = _cipher(client_id, client_secret).encryptor()
    raw: bytes = encryptor.update(plaintext + bytes([pad]) * pad) + encryptor.finalize()
    return base64.b64encode(raw).decode("ascii")


def decrypt(data_encrypt: str, client_id: str, client_secret: str) -> bytes:
    """Reverse of :func:`encrypt`, with strict Base64 and a strict PKCS#7 check.

    Raises:
        CryptoError: bad Base64, a length that is not a whole number of blocks, a wrong key
            (which almost always shows up as bad padding), or bad padding.
    """
    try:
        raw = base64.b64decode(data_encrypt.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CryptoError("dataEncrypt is not valid Base64", reason="base64") from exc
    # b64decode(validate=True) still ignores non-zero unused bits ("QR==" reads as "QQ=="),
    # which would let a signed dataEncrypt string vary while the ciphertext stays the same.
    if base64.b64encode(raw) != data_encrypt.encode("ascii"):
        raise CryptoError("dataEncrypt is not canonical Base64", reason="base64")
    if not raw or len(raw) % _BLOCK:
        raise CryptoError(
            "ciphertext length is not a positive multiple of 16 bytes", reason="padding"
        )
    decryptor = _cipher(client_id, client_secret).decryptor()
    padded: bytes = decryptor.update(raw) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise CryptoError(
            "bad PKCS#7 padding (wrong key or corrupted ciphertext)", reason="padding"
        )
    return padded[:-pad]
