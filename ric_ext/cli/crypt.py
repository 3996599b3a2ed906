"""`encrypt`, `decrypt` and `reencrypt`: folders of images and ciphertexts."""

from __future__ import annotations

import argparse
from typing import Optional

from .common import (
    CLASSIFIER_HELP,
    DEVICE_HELP,
    MODELS_HELP,
    add_cipher_args,
    add_digits_args,
    add_folder_job_args,
    add_nae_args,
    add_output_args,
    bank_of,
    cipher_of,
    classifier_of,
    ensemble_of,
    file_reporter,
    nae_of,
    nonce_seed_of,
    report_count,
    size_of,
)


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from ..folders import encrypt_folder

    cipher = cipher_of(args)
    n = encrypt_folder(
        cipher,
        args.input,
        args.output,
        progress=not args.no_progress,
        size=size_of(args, cipher.classifier),
        resume=args.resume,
        nonce_seed=nonce_seed_of(args),
        on_file=file_reporter(args),
    )
    report_count("encrypted", n, args.output)
    return 0


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from ..folders import decrypt_folder

    n = decrypt_folder(
        cipher_of(args),
        args.input,
        args.output,
        progress=not args.no_progress,
        resume=args.resume,
        on_file=file_reporter(args),
    )
    report_count("decrypted", n, args.output)
    return 0


def _cmd_reencrypt(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..cipher import Cipher
    from ..folders import reencrypt_folder
    from ..keys import Key

    old_key = Key.load(args.key)
    new_key = Key.load(args.new_key) if args.new_key else old_key
    clf = classifier_of(args)
    cipher = Cipher(
        clf,
        new_key,
        nae=nae_of(args, None, clf, "digits"),
        batch_size=args.batch_size,
        base=args.base,
        bank=bank_of(args),
        precision=args.precision,
        progress=not args.no_progress,
        ensemble=ensemble_of(args, clf),
    )

    def report(path: str, lossless: bool, replayed_format: Optional[int]) -> None:
        line = f"{path}\t{'lossless' if lossless else 'lossy (as the old file was)'}"
        if replayed_format is not None:
            line += (
                f"\tfrom format {replayed_format}, a replayed format: the new file holds the bytes it decrypts to "
                "on this machine, and decrypts with the key alone from now on"
            )
        tqdm.write(line)

    n = reencrypt_folder(
        cipher,
        old_key,
        args.input,
        args.output,
        models=args.models,
        progress=not args.no_progress,
        resume=args.resume,
        nonce_seed=nonce_seed_of(args),
        on_file=None if args.no_report else report,
    )
    report_count("re-encrypted", n, args.output)
    return 0


def add(sub) -> None:
    for name, fn, what in (("encrypt", _cmd_encrypt, "images"), ("decrypt", _cmd_decrypt, "ciphertext PNGs")):
        c = sub.add_parser(name, help=f"{name} a file or folder of {what}")
        if name == "encrypt":
            c.add_argument(
                "--size",
                type=int,
                default=None,
                help="centre-crop and resize every image to SIZE x SIZE first (default: the "
                "classifier's input size, e.g. 32 for svhn, 64 for lfw; images of another "
                "size are cropped and resized to it)",
            )
        add_folder_job_args(c, what, nonces=name == "encrypt")
        add_cipher_args(c)
        c.set_defaults(func=fn)
    _add_reencrypt(sub)


def _add_reencrypt(sub) -> None:
    r = sub.add_parser(
        "reencrypt",
        help="re-encrypt ciphertext PNGs (any format) under a new key, classifier, base or bank, into format 4, "
        "without writing the plaintext anywhere; each new file is checked to decrypt to the old file's bytes",
    )
    r.add_argument("--key", required=True, help="the key the input files were made under")
    r.add_argument("--new-key", default=None, help="the key of the new files (default: --key, with fresh nonces)")
    add_folder_job_args(r, "ciphertext PNGs", nonces=True)
    add_digits_args(r)
    r.add_argument(
        "--classifier",
        default=None,
        help=CLASSIFIER_HELP + " (default: the classifier the input files were made for)",
    )
    r.add_argument("--models", default=None, help=MODELS_HELP + "; formats 1-3 also find their own classifier there")
    r.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_nae_args(r)
    r.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    add_output_args(r)
    r.set_defaults(func=_cmd_reencrypt)
