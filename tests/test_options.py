"""Typed option specs that models and tasks declare, turned into argparse arguments (core/options.py)."""

from __future__ import annotations

import argparse

import pytest

from core.options import Option, add_options, chosen


def test_options_become_arguments_once_with_their_owners_named() -> None:
    width = Option("edge_width", int, "edge width")
    owners = {"a": (width, Option("mode", str, "a mode", ("x", "y"))), "b": (width,), "c": (Option("flag", bool),)}
    parser = argparse.ArgumentParser()
    added = add_options(parser, owners, "model")
    assert [o.name for o in added] == ["edge_width", "mode", "flag"]
    help_text = " ".join(parser.format_help().split())
    assert "--edge-width EDGE_WIDTH edge width (a, b)" in help_text and "a mode (a)" in help_text
    args = parser.parse_args(["--edge-width", "3", "--no-flag"])
    assert chosen(args, added) == {"edge_width": 3, "flag": False}  # `mode` not given: left to its owner
    assert chosen(parser.parse_args([]), added) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "z"])  # choices are enforced


def test_one_option_name_declared_two_ways_is_refused() -> None:
    owners = {"a": (Option("size", int),), "b": (Option("size", str),)}
    with pytest.raises(ValueError, match="declares option --size differently"):
        add_options(argparse.ArgumentParser(), owners, "task")
