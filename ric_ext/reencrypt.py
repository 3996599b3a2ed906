"""Re-encryption without plaintext on disk: a new key, format 4 for old files, another classifier or bank.

After ``cryptography``'s ``MultiFernet.rotate``: one call takes a ciphertext under the old key and
gives one under the new cipher, and the plaintext exists only in memory, one batch at a time.

    new_ct = reencrypt(ct, old_key, Cipher(classifier, new_key))

The new ciphertexts are always format 4 (the digits scheme), whatever the old ones were: formats
1-3 decrypt by replaying a float attack, so they are given the bytes they decrypt to *on this
machine*, and from then on decrypt with the key alone. Every new ciphertext is decrypted again
with the new key before it is returned, and must give exactly the bytes the old one gave;
:class:`~ric_ext.errors.ReencryptionError` names the images that would not (for example an image
that fitted the share losslessly at base 64 but not at a smaller ``base``).
"""

from __future__ import annotations

import json
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .cipher import Cipher, Ciphertext
from .errors import IntegrityError, ReencryptionError
from .keys import Key

#: Formats whose decryption replays a float attack (the bytes may differ on another machine).
REPLAYED_FORMATS = (1, 2, 3)


def replayed(ct: Ciphertext) -> bool:
    """Whether ``ct``'s format decrypts by replaying a float attack (formats 1-3)."""
    return ct.header.get("version") in REPLAYED_FORMATS


class OldCiphers:
    """The decrypting ciphers of one old key, one per header, made once (older formats load their
    classifier and RIC weights by the header's fingerprints from ``models``, the store or the
    bundled ones)."""

    def __init__(self, key: Key, *, models: Optional[str] = None, device="cpu", batch_size: int = 256):
        if not isinstance(key, Key):
            raise TypeError(f"old_key must be a ric_ext.keys.Key, got {type(key).__name__}")
        self.key, self.models, self.device, self.batch_size = key, models, device, batch_size
        self._made: Dict[str, Cipher] = {}

    def for_header(self, header: dict) -> Cipher:
        tag = json.dumps(header, sort_keys=True, default=str)
        if tag not in self._made:
            self._made[tag] = Cipher.from_ciphertext(
                header, self.key, models=self.models, device=self.device, batch_size=self.batch_size
            )
        return self._made[tag]

    def plaintext(self, ct: Ciphertext, names: Optional[Sequence[str]] = None) -> torch.Tensor:
        """(B, C, H, W) uint8: what ``ct`` decrypts to under the old key (in memory only). An image
        that does not decrypt raises IntegrityError naming it (its file, with ``names``)."""
        cipher = self.for_header(ct.header)
        try:
            return cipher.decrypt_uint8(ct)[0]
        except IntegrityError:
            pass
        for i in range(len(ct)):  # find which one, and name it
            try:
                cipher.decrypt_uint8(ct[i])
            except IntegrityError as exc:
                who = names[i] if names is not None else f"ciphertext {i}"
                raise IntegrityError(f"{who} does not decrypt under the old key: {exc}") from None
        raise IntegrityError("the batch does not decrypt under the old key")  # pragma: no cover


def check_target(cipher: Cipher) -> None:
    """Re-encryption writes format 4 only: its decryption needs the key alone and no float replay."""
    if not isinstance(cipher, Cipher):
        raise TypeError(f"cipher must be a ric_ext Cipher, got {type(cipher).__name__}")
    if cipher.replays or cipher.classifier is None:
        raise ValueError(
            "re-encryption makes format-4 ciphertexts (the digits scheme) with a classifier: pass "
            "Cipher(classifier, new_key); the replayed schemes cannot promise the same bytes elsewhere"
        )


def verify(new: Sequence[Ciphertext], want: torch.Tensor, key: Key, names: Sequence[str]) -> List[bool]:
    """Decrypt each new ciphertext with ``key`` alone (as a user would later) and compare it with
    ``want`` (B, C, H, W) uint8; raises ReencryptionError naming the first that differs.
    Returns each image's ``lossless`` flag."""
    ct = Ciphertext.cat(list(new))
    try:
        got, lossless = Cipher.from_ciphertext(ct, key).decrypt_uint8(ct)
    except IntegrityError as exc:
        raise ReencryptionError(f"a re-encrypted image does not decrypt with the new key ({exc})") from None
    for i in range(len(ct)):
        if not torch.equal(got[i], want[i]):
            why = "" if bool(lossless[i]) else ": it no longer fits the share losslessly (try the old --base)"
            raise ReencryptionError(
                f"{names[i]}: its re-encryption would not decrypt to the bytes the old ciphertext gave{why}; "
                "nothing was written for it"
            )
    return [bool(v) for v in lossless]


def reencrypt(
    ct: Ciphertext,
    old_key: Key,
    cipher: Cipher,
    *,
    models: Optional[str] = None,
    nonce_source: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
) -> Ciphertext:
    """``ct`` (made under ``old_key``, any format) encrypted again by ``cipher`` (the digits scheme,
    its key, classifier and bank), without the plaintext leaving memory.

    The result is checked before it is returned: decrypted with ``cipher.key`` alone it gives
    exactly the (B, C, H, W) uint8 images ``ct`` decrypts to (formats 1-3: on this machine).
    Raises WrongKeyError if ``ct`` was made under another key than ``old_key``, IntegrityError
    if it does not decrypt, ReencryptionError if an image would not come back the same.
    ``models`` is where formats 1-3 find their classifier (default: RIC_MODELS and the store).
    """
    check_target(cipher)
    x8 = OldCiphers(old_key, models=models, batch_size=cipher.batch_size).plaintext(ct)
    new = cipher.encrypt(x8, nonce_source=nonce_source)
    verify([new], x8, cipher.key, [f"image {i}" for i in range(len(ct))])
    return new


def group_by_header(items: Sequence[Tuple[Ciphertext, str]]) -> List[List[Tuple[Ciphertext, str]]]:
    """Ciphertexts with the same header (and so the same old cipher and shape), in order of first appearance."""
    groups: Dict[str, list] = {}
    for ct, name in items:
        tag = json.dumps([ct.header, list(ct.pixels.shape[1:])], sort_keys=True, default=str)
        groups.setdefault(tag, []).append((ct, name))
    return list(groups.values())
