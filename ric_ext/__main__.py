"""``python -m ric_ext <command>``: the command line lives in :mod:`ric_ext.cli`."""

import sys

from .cli import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
