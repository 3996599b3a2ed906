"""Exceptions of the RIC library. Every message names what is wrong and never
contains key material."""


class RicError(Exception):
    """Base class of ric_ext's own errors."""


class KeyFileError(RicError, ValueError):
    """A key file is missing, malformed, or has unsafe permissions."""


class CiphertextFormatError(RicError, ValueError):
    """The file is not a ric_ext ciphertext, is truncated, or its header is malformed."""


class ReencodedError(CiphertextFormatError):
    """The file is an image in another format (e.g. JPEG): the ciphertext was re-encoded, which loses it."""


class IntegrityError(RicError):
    """Decryption did not give back the image that was encrypted (its keyed digest does not match, or
    the payload does not decode): raised instead of returning a different image."""


class ReencryptionError(IntegrityError):
    """A re-encrypted ciphertext would not decrypt, with the new key, to the bytes the old one gave
    (so it is not written or returned)."""


class WrongKeyError(RicError):
    """The ciphertext was made under another key."""


class TamperedError(RicError):
    """The authentication tag does not match: pixels or header were modified."""


class ModelMismatchError(RicError):
    """The RIC weights or the classifier differ from those the ciphertext was made with."""


class CheckpointError(RicError, ValueError):
    """A checkpoint is missing, unreadable or does not fit the model."""


class RemoteError(RicError):
    """A classification server could not be reached, or refused the request (its message is kept)."""


class MissingDependencyError(RicError, ImportError):
    """An optional extra that a command needs is not installed (the message says what to install)."""


class PaperSchemeWarning(UserWarning):
    """Images are being encrypted under the paper's scheme without asking for it by name.

    That scheme's ciphertexts leak a blurred copy of the image to an attacker who has the
    public weights (docs/security.md); the default pad scheme does not.
    """


PAPER_SCHEME_LEAKS = (
    "a RIC model without scheme= selects the paper's scheme, whose ciphertexts leak a blurred image "
    "to an attacker with the public weights (docs/security.md); pass scheme='paper' (CLI: --scheme paper) "
    "to choose it knowingly, or no model for the default digits scheme"
)
