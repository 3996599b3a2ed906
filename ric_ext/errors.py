"""Exceptions of the RIC library. Every message names what is wrong and never
contains key material."""


class RicError(Exception):
    """Base class of ric_ext's own errors."""


class KeyFileError(RicError, ValueError):
    """A key file is missing, malformed, or has unsafe permissions."""


class CiphertextFormatError(RicError, ValueError):
    """The file is not a ric_ext ciphertext, is truncated, or its header is malformed."""


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
