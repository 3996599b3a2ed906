"""`keygen`: a new key file."""

from __future__ import annotations

import argparse


def _cmd_keygen(args: argparse.Namespace) -> int:
    import os

    from ..keys import Key

    if args.passphrase_env:
        pw = os.environ.get(args.passphrase_env)
        if not pw:
            raise SystemExit(f"environment variable {args.passphrase_env} is empty or unset")
        if not args.salt:
            raise SystemExit("--salt (hex) is required with --passphrase-env")
        key = Key.from_passphrase(pw, bytes.fromhex(args.salt))
    else:
        key = Key.generate()
    key.save(args.out, overwrite=False)
    print(f"wrote {args.out} (mode 0600), {key!r}")
    return 0


def add(sub) -> None:
    kg = sub.add_parser("keygen", help="create a key file (mode 0600)")
    kg.add_argument("--out", required=True, help="key file to create (never overwritten)")
    kg.add_argument("--passphrase-env", help="derive the key with scrypt from this environment variable")
    kg.add_argument("--salt", help="hex salt for --passphrase-env (>= 8 bytes)")
    kg.set_defaults(func=_cmd_keygen)
