"""Typed command-line options that models and tasks declare about themselves; the CLI turns them into
argparse arguments, so a new model or task brings its own flags without editing the CLI."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

C = TypeVar("C", bound=type)


def register_by_name(table: dict[str, C], cls: C, error: type[Exception], kind: str) -> C:
    """Add class `cls` to registry `table` under its `name`; a different class already under that name is refused."""
    if cls.name in table and table[cls.name] is not cls:
        raise error(f"a different {kind} is already registered as {cls.name!r}")
    table[cls.name] = cls
    return cls


def names_where(table: dict[str, C], where: Callable[[C], bool]) -> list[str]:
    """Names of the registered classes that satisfy `where`, in registration order."""
    return [name for name, cls in table.items() if where(cls)]


@dataclass(frozen=True)
class Option:
    """One option: `name` is the keyword it fills (a task constructor argument or a model config field)."""

    name: str
    type: type = str
    help: str = ""
    choices: tuple[Any, ...] | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling, e.g. `edge_hidden` → `--edge-hidden`."""
        return "--" + self.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, owners: dict[str, Iterable[Option]], what: str) -> list[Option]:
    """Add the options declared by `owners` (name → options), each once, defaulting to None (= the owner's
    own default); the help names the owners when not all of them declare an option. Returns the options added."""
    declared: dict[str, Option] = {}
    users: dict[str, list[str]] = {}
    for owner, options in owners.items():
        for opt in options:
            if declared.setdefault(opt.name, opt) != opt:
                raise ValueError(f"{what} {owner!r} declares option {opt.flag} differently from another {what}")
            users.setdefault(opt.name, []).append(owner)
    for name, opt in declared.items():
        who = "" if len(users[name]) == len(owners) else f" ({', '.join(users[name])})"
        if opt.type is bool:  # --name / --no-name
            parser.add_argument(opt.flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{opt.help}{who}")
        else:
            parser.add_argument(opt.flag, dest=name, type=opt.type, default=None, choices=opt.choices,
                                help=f"{opt.help}{who}")
    return list(declared.values())


def chosen(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The values given on the command line for `options` (those left at None are omitted)."""
    return {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}
