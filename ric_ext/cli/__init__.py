"""The command line, ``python -m ric_ext <command>`` (also installed as ``ric-ext``): one module per
group of commands, each adding its parsers and calling the library; settings come from their
dataclasses (:mod:`ric_ext.options`), never from lists written here.

| module | commands |
| --- | --- |
| ``keys`` | keygen |
| ``crypt`` | encrypt, decrypt, reencrypt |
| ``cloud`` | classify, serve |
| ``models`` | models, import-authors |
| ``research`` | train, evaluate |
| ``info`` | info, demo |

``common`` holds what several commands share.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import cloud, crypt, info, keys, models, research


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ric-ext", description="Recoverable privacy-preserving image classification")
    sub = p.add_subparsers(dest="command", required=True)
    info.add_info(sub)
    research.add_train(sub)
    keys.add(sub)
    crypt.add(sub)
    cloud.add(sub)
    research.add_evaluate(sub)
    models.add_models(sub)
    models.add_import_authors(sub)
    info.add_demo(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..errors import RicError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RicError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"ric-ext {args.command}: error: {exc}", file=sys.stderr)
        return 2
