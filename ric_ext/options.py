"""Settings dataclasses as command-line options: one source for names, defaults, types and help.

A field declared with :func:`opt` carries its help text (and, where needed,
choices or a parser) in its metadata. :func:`add_options` turns every field of
a dataclass into ``--PREFIX-NAME``, and :func:`from_options` builds the
dataclass back from the parsed arguments. The CLI lists no setting by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Callable, Optional, Sequence


def opt(
    default: Any, help: str, *, choices: Optional[Sequence[Any]] = None, parse: Optional[Callable[[str], Any]] = None
) -> Any:
    """A dataclass field with its command-line help (``choices``; ``parse``: str -> value)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "parse": parse})


def yes_no(s: str) -> bool:
    """'true'/'false' (also yes/no, on/off, 1/0) as a bool, for boolean options."""
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _parser_for(tp: Any) -> Callable[[str], Any]:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1:  # Optional[X]
        tp = args[0]
    if tp is bool:
        return yes_no
    if tp in (int, float, str):
        return tp
    raise TypeError(f"no command-line parser for {tp!r}: give the field opt(..., parse=...)")


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    skip: Sequence[str] = (),
    defaults: Optional[dict] = None,
    unset_note: Optional[str] = None,
) -> None:
    """Add ``--PREFIX-FIELD`` for every field of dataclass ``cls`` (dest ``PREFIX_FIELD``).

    ``defaults`` overrides a field's default in the parser only. ``argparse.SUPPRESS`` leaves
    an option that was not given out of the namespace (the CLI then takes the model's own
    setting); ``unset_note`` says so in the help: "the model's own setting" gives
    "(default: the model's own setting, else 0.01)".
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        if "help" not in meta:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: declare it with ric_ext.options.opt")
        default = (defaults or {}).get(f.name, f.default)
        dest = _dest(prefix, f.name)
        shown = "%(default)s"
        if default is argparse.SUPPRESS and unset_note:
            shown = f"{unset_note}, else {f.default}".replace("%", "%%")
        elif default is argparse.SUPPRESS:
            shown = str(f.default).replace("%", "%%")
        parser.add_argument(
            "--" + dest.replace("_", "-"),
            dest=dest,
            default=default,
            choices=meta.get("choices"),
            type=meta.get("parse") or _parser_for(hints[f.name]),
            help=meta["help"].replace("%", "%%") + f" (default: {shown})",
        )


def from_options(cls: type, args: argparse.Namespace, prefix: str = "", **overrides: Any) -> Any:
    """An instance of ``cls`` from the options :func:`add_options` added (``overrides`` win)."""
    values = {
        f.name: getattr(args, _dest(prefix, f.name))
        for f in dataclasses.fields(cls)
        if hasattr(args, _dest(prefix, f.name))
    }
    values.update(overrides)
    return cls(**values)
