"""Every option of every ``circuits`` command has a help text that states its default."""

from __future__ import annotations

import argparse

from studies.cli import COMMANDS, build_parser


def _options(parser, path=()):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _options(sub, (*path, name))
        elif a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
            yield path, a


def test_every_option_has_help_with_its_default():
    missing, no_default = [], []
    for path, a in _options(build_parser()):
        where = f"{' '.join(path)} {a.option_strings[0]}"
        if not a.help:
            missing.append(where)
        d = a.default
        stated = d is None or d is False or d == [] or isinstance(a, argparse._StoreTrueAction)
        if not stated and "default" not in a.help:
            no_default.append(where)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not state the default: {no_default}"
    assert "replay" in COMMANDS
    assert "(default: 64)" in next(a.help for p, a in _options(build_parser())
                                  if p == ("study", "family-ablation") and "--batch-size" in a.option_strings)
