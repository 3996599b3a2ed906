"""Settings dataclasses as CLI options (ric_ext.options): one source for names, defaults, types, help."""

import argparse
import dataclasses

import pytest

from ric_ext.nae import NAEConfig
from ric_ext.options import add_options, from_options, opt
from ric_ext.security.protocol import ProtocolSettings
from ric_ext.training import TrainConfig


@pytest.mark.parametrize("cls,prefix", [(NAEConfig, "nae"), (TrainConfig, ""), (ProtocolSettings, "")])
def test_every_field_is_an_option_with_help_and_round_trips(cls, prefix):
    p = argparse.ArgumentParser()
    add_options(p, cls, prefix=prefix)
    helps = {a.dest: a.help for a in p._actions}
    for f in dataclasses.fields(cls):
        dest = f"{prefix}_{f.name}" if prefix else f.name
        assert dest in helps and len(helps[dest]) > len(" (default: %(default)s)"), f.name
    # no options given: the dataclass's own defaults
    assert from_options(cls, p.parse_args([]), prefix=prefix) == cls()


def test_options_parse_types_choices_and_custom_parsers():
    p = argparse.ArgumentParser()
    add_options(p, NAEConfig, prefix="nae")
    args = p.parse_args(
        ["--nae-steps", "7", "--nae-lr", "0.05", "--nae-early-stop", "false", "--nae-check-margin", "none"]
    )
    cfg = from_options(NAEConfig, args, prefix="nae")
    assert (cfg.steps, cfg.lr, cfg.early_stop, cfg.check_margin) == (7, 0.05, False, None)
    assert from_options(NAEConfig, p.parse_args(["--nae-check-margin", "2.5"]), prefix="nae").check_margin == 2.5
    with pytest.raises(SystemExit):  # not one of the stop rules
        p.parse_args(["--nae-stop", "sometimes"])
    with pytest.raises(SystemExit):  # not a bool
        p.parse_args(["--nae-early-stop", "maybe"])


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Bad:
        a: int = opt(1, "documented")
        b: int = 2

    with pytest.raises(TypeError, match="Bad.b has no help"):
        add_options(argparse.ArgumentParser(), Bad)
