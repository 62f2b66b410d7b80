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
        stated = d is None or d is False or d == [] or isinstance(a, (argparse._StoreTrueAction,
                                                                      argparse._StoreFalseAction))
        if not stated and "default" not in a.help:
            no_default.append(where)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help does not state the default: {no_default}"
    assert "replay" in COMMANDS
    assert "(default: 64)" in next(a.help for p, a in _options(build_parser())
                                  if p == ("study", "family-ablation") and "--batch-size" in a.option_strings)


def _help(path: tuple, option: str) -> str:
    return next(a.help for p, a in _options(build_parser()) if p == path and option in a.option_strings)


def test_vis_relu_flags_state_one_default():
    """--pre-relu is the default; --post-relu must not claim to be one (both said "default")."""
    assert "default" in _help(("vis",), "--pre-relu")
    assert "default" not in _help(("vis",), "--post-relu")
    args = build_parser().parse_args(["vis", "3b:9", "--out", "o"])
    assert args.pre_relu is True and build_parser().parse_args(["vis", "3b:9", "--out", "o", "--post-relu"]).pre_relu is False


def test_seed_help_says_what_the_seed_controls():
    seeds = {p: a.help for p, a in _options(build_parser()) if "--seed" in a.option_strings}
    assert len(seeds) >= 9 and all(h.startswith("seed of ") and "every random choice" not in h for h in seeds.values())
    said = {("vis",): "the random start image and the random transforms", ("factor",): "NMF initialisation",
            ("bench-curves",): "synthetic scenes", ("dataset",): "examples in each activation range",
            ("attribute",): "feature visualization", ("study", "artificial-curves"): "shuffled-orientation controls"}
    for path, what in said.items():
        h = _help(path, "--seed")
        assert what in h, (path, h)
