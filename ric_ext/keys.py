"""Secret keys: generation, passphrase derivation, subkeys, key files.

A :class:`Key` holds 32 secret bytes. Independent subkeys, one per purpose, are derived
with HKDF-SHA256 (RFC 5869): the ChaCha20 noise, the pads of the image's share, the bank
entry choice, the plaintext digests, and the authentication of ciphertext files
(HMAC-SHA256). The key never appears in ``repr``, ``str``, logs or exception messages; its
public ``key_id`` (an HMAC of a constant) lets a file say "made under another key" without
revealing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from typing import Union

from .checks import check_int
from .errors import KeyFileError
from .io_utils import atomic_write_bytes

PathLike = Union[str, "os.PathLike[str]"]
KEY_BYTES = 32
_FORMAT = "ric-ext-key"


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """HKDF (RFC 5869) with SHA-256."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


class Key:
    """A 256-bit RIC key. Create with :meth:`generate`, :meth:`from_passphrase` or :meth:`load`."""

    __slots__ = ("_secret", "_derived")

    def __init__(self, secret: bytes):
        if not isinstance(secret, (bytes, bytearray)):
            raise TypeError(f"key material must be bytes, got {type(secret).__name__}")
        if len(secret) != KEY_BYTES:
            raise ValueError(f"key material must be {KEY_BYTES} bytes, got {len(secret)}")
        self._secret = bytes(secret)
        self._derived: dict = {}  # subkeys, derived once: a per-image decryption asks for several

    def _sub(self, info: bytes, length: int = 32) -> bytes:
        if info not in self._derived:
            self._derived[info] = hkdf_sha256(self._secret, info, length)
        return self._derived[info]

    def with_flipped_bit(self, bit: int) -> Key:
        """This key with one bit of its secret flipped: for key-sensitivity tests (``evaluate --attacks``)."""
        check_int("bit", bit, 0, 8 * KEY_BYTES)
        b = bytearray(self._secret)
        b[bit // 8] ^= 1 << (bit % 8)
        return Key(bytes(b))

    @classmethod
    def generate(cls) -> Key:
        """A fresh random key from the OS's CSPRNG."""
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_passphrase(
        cls, passphrase: Union[str, bytes], salt: bytes, *, n: int = 2**15, r: int = 8, p: int = 1
    ) -> Key:
        """scrypt(passphrase, salt) -> key. Use a random salt of >= 16 bytes and keep it with the data."""
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if not isinstance(passphrase, bytes) or not passphrase:
            raise ValueError("passphrase must be a non-empty str or bytes")
        if not isinstance(salt, (bytes, bytearray)) or len(salt) < 8:
            raise ValueError("salt must be bytes of length >= 8 (16 random bytes recommended)")
        secret = hashlib.scrypt(
            passphrase, salt=bytes(salt), n=n, r=r, p=p, maxmem=256 * r * n + 2**20, dklen=KEY_BYTES
        )
        return cls(secret)

    # -- subkeys ---------------------------------------------------------------
    @property
    def noise_key(self) -> bytes:
        """32-byte ChaCha20 key for the NAE noise."""
        return self._sub(b"ric-ext v1 noise")

    @property
    def pad_key(self) -> bytes:
        """32-byte ChaCha20 key for the "pad" scheme's one-time pad (independent of the noise key)."""
        return self._sub(b"ric-ext v1 pad")

    @property
    def digit_key(self) -> bytes:
        """32-byte ChaCha20 key for the "digits" scheme's digit pad (format 4)."""
        return self._sub(b"ric-ext v4 digit pad")

    @property
    def bank_key(self) -> bytes:
        """Chooses each image's NAE bank entry in the "digits" scheme (:mod:`ric_ext.bank`)."""
        return self._sub(b"ric-ext v4 bank entry")

    @property
    def digest_key(self) -> bytes:
        """HMAC-SHA256 key of the plaintext digests that format-4 decryption checks."""
        return self._sub(b"ric-ext v4 plaintext digest")

    @property
    def mac_key(self) -> bytes:
        """32-byte HMAC-SHA256 key for ciphertext files."""
        return self._sub(b"ric-ext v1 mac")

    @property
    def nonce_key(self) -> bytes:
        """Derives nonces for folder jobs (``ric_ext.folders.derived_nonces``)."""
        return self._sub(b"ric-ext v1 nonce")

    @property
    def key_id(self) -> str:
        """A public 16-hex-digit identifier (reveals nothing about the key)."""
        return self._sub(b"ric-ext v1 key id", 8).hex()

    # -- files -----------------------------------------------------------------
    def save(self, path: PathLike, *, overwrite: bool = False) -> None:
        """Write the key to ``path`` with mode 0600, atomically; refuses to overwrite unless asked."""
        blob = json.dumps({"format": _FORMAT, "version": 1, "key": self._secret.hex()}).encode() + b"\n"
        atomic_write_bytes(path, blob, mode=0o600, overwrite=overwrite)

    @classmethod
    def load(cls, path: PathLike) -> Key:
        """Read a key file written by :meth:`save`. Refuses files readable by group/others."""
        path = os.fspath(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise KeyFileError(f"key file not found: {path}") from None
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file {path} is accessible by group/others (mode {oct(st.st_mode & 0o777)}); "
                f"run `chmod 600 {path}`"
            )
        try:
            with open(path, "rb") as f:
                d = json.loads(f.read(4096).decode("utf-8"))
            if d.get("format") != _FORMAT or d.get("version") != 1:
                raise ValueError
            secret = bytes.fromhex(d["key"])
            if len(secret) != KEY_BYTES:
                raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
            raise KeyFileError(f"{path} is not a ric_ext key file") from None
        return cls(secret)

    # -- hygiene ---------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Key(id={self.key_id})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self):
        raise TypeError("Key objects are not picklable (save them with Key.save)")
