"""AES-GCM keyring, as memberlist's ``keyring.go`` and ``security.go`` define it.

The primary key encrypts; every installed key is tried when decrypting, so keys can rotate
online: install the new key everywhere, make it primary everywhere, then remove the old one.
A ciphertext is ``[version][12-byte nonce][ciphertext + 16-byte tag]``; version 1 (protocol
2 and later) is unpadded, version 0 pads with PKCS#7 and is only decoded.

Nonces come from ``os.urandom`` unless a ``nonce_source`` is injected (the simulator does,
so that an encrypted run is still a pure function of its seed).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engram.errors import LocalProtocolError, ValidationError
from engram.net.swim.errors import DecryptionFailed

__all__ = ["Keyring", "decode_key", "ENCRYPTION_OVERHEAD_BYTES"]

_NONCE_BYTES = 12
_TAG_BYTES = 16
_VERSION_MAX = 1
# Bytes that encryption version 1 adds to a message.
ENCRYPTION_OVERHEAD_BYTES = 1 + _NONCE_BYTES + _TAG_BYTES
_KEY_SIZES = (16, 24, 32)


def decode_key(text: str) -> bytes:
    """Decode a base64 key as ``serf keygen`` prints it.

    Raises ValidationError when the text is not base64 or not 16, 24 or 32 bytes long.
    """
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(
            "encrypt", f"not base64 ({exc})", "base64 of 16, 24 or 32 random bytes",
            "--encrypt $(serf keygen)",
        ) from None
    _check_key(key)
    return key


def _check_key(key: bytes) -> None:
    if len(key) not in _KEY_SIZES:
        raise ValidationError(
            "encrypt", f"key is {len(key)} bytes long", "16, 24 or 32 bytes (AES-128/192/256)",
            "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=",
        )


class Keyring:
    """Installed AES keys, the first being the primary one used to encrypt."""

    __slots__ = ("_keys", "_ciphers", "_nonce_source")

    def __init__(
        self, keys: list[bytes], *, nonce_source: Callable[[int], bytes] = os.urandom
    ) -> None:
        if not keys:
            raise ValidationError("keys", "empty keyring", "at least one key", "[os.urandom(32)]")
        self._keys: list[bytes] = []
        self._ciphers: list[AESGCM] = []
        self._nonce_source = nonce_source
        for key in keys:
            self.install(key)

    @property
    def primary_key(self) -> bytes:
        return self._keys[0]

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(self._keys)

    def install(self, key: bytes) -> None:
        """Add a key for decryption (no-op if present). Raises ValidationError on a bad size."""
        _check_key(key)
        if key not in self._keys:
            self._keys.append(key)
            self._ciphers.append(AESGCM(key))

    def use(self, key: bytes) -> None:
        """Make an installed key primary. Raises LocalProtocolError if it is not installed."""
        if key not in self._keys:
            raise LocalProtocolError("use(): key is not installed; install() it first")
        index = self._keys.index(key)
        self._keys.insert(0, self._keys.pop(index))
        self._ciphers.insert(0, self._ciphers.pop(index))

    def remove(self, key: bytes) -> None:
        """Remove a key. Raises LocalProtocolError for the primary key (memberlist refuses too)."""
        if key == self._keys[0]:
            raise LocalProtocolError("remove(): cannot remove the primary key; use() another first")
        if key in self._keys:
            index = self._keys.index(key)
            del self._keys[index]
            del self._ciphers[index]

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Encrypt with the primary key, version 1 (unpadded)."""
        nonce = self._nonce_source(_NONCE_BYTES)
        assert len(nonce) == _NONCE_BYTES
        sealed = self._ciphers[0].encrypt(nonce, plaintext, associated_data or None)
        return b"\x01" + nonce + sealed

    def decrypt(self, data: bytes, associated_data: bytes = b"") -> bytes:
        """Open ``data`` with any installed key. Raises DecryptionFailed."""
        if len(data) < 1 + _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionFailed(f"ciphertext of {len(data)} bytes is too short")
        version = data[0]
        if version > _VERSION_MAX:
            raise DecryptionFailed(f"unknown encryption version {version}")
        nonce = data[1 : 1 + _NONCE_BYTES]
        sealed = data[1 + _NONCE_BYTES :]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, associated_data or None)
            except InvalidTag:
                continue
            if version == 0:
                plain = _pkcs7_unpad(plain)
            return plain
        raise DecryptionFailed("no installed key decrypts the message")


def _pkcs7_unpad(data: bytes) -> bytes:
    if not data:
        raise DecryptionFailed("empty padded plaintext")
    pad = data[-1]
    if pad == 0 or pad > 16 or pad > len(data):
        raise DecryptionFailed("bad PKCS#7 padding")
    return data[:-pad]
