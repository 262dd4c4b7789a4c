"""The command line reads the same everywhere: every command has a one-line help and a description,
every argument has help, an option's default is stated in its help (argparse's `%(default)s`), and
one argument (one dest) is shown with one metavar in every command (`--batch ID`, `--out PATH`)."""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass

from prefpipe.cli import build_parser

SKIPPED_COMMANDS: dict[str, str] = {}
"""Commands left out of these checks, with why (none today)."""


@dataclass(frozen=True)
class Command:
    path: str  # "prefpipe annotators add"
    help: str | None  # the line `prefpipe annotators --help` shows for it
    parser: argparse.ArgumentParser


def commands(parser: argparse.ArgumentParser, path: str = "prefpipe") -> list[Command]:
    """Every command and subcommand under `parser`, depth first, skipping SKIPPED_COMMANDS' trees."""
    found = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            if path == "prefpipe" and name in SKIPPED_COMMANDS:
                continue
            command = Command(f"{path} {name}", helps.get(name), child)
            found += [command, *commands(child, command.path)]
    return found


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's own arguments: not --help, not the subcommand chooser."""
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def has_default(action: argparse.Action) -> bool:
    """Whether the option stands for a value when not given (a flag's False or an empty repeatable
    list stands for nothing)."""
    default = action.default
    return default is not None and default is not False and default != argparse.SUPPRESS and default != []


def shown_metavar(action: argparse.Action) -> str | None:
    """The name the help shows for the argument's value; None for flags and lists of choices."""
    if action.nargs == 0 or (action.choices is not None and action.metavar is None):
        return None
    if action.metavar is not None:
        return str(action.metavar)
    return action.dest if not action.option_strings else action.dest.upper()


def label(command: Command, action: argparse.Action) -> str:
    return f"{command.path} {'/'.join(action.option_strings) or action.dest}"


ALL = commands(build_parser())


def test_the_walk_sees_the_command_tree():
    paths = {c.path for c in ALL}
    assert {"prefpipe run", "prefpipe annotators add", "prefpipe gold recheck", "prefpipe store migrate"} <= paths
    assert not any(path.split()[1] in SKIPPED_COMMANDS for path in paths)


def test_every_command_has_a_one_line_help_and_a_description():
    no_help = [c.path for c in ALL if not c.help or "\n" in c.help]
    no_description = [c.path for c in ALL if not c.parser.description]
    assert not no_help, "commands without a one-line help= on add_parser: " + ", ".join(no_help)
    assert not no_description, "commands without a description= on add_parser: " + ", ".join(no_description)


def test_every_help_page_renders():
    for c in ALL:
        c.parser.format_help()  # a stray % in a help text fails here, not in front of a user


def test_every_argument_has_help():
    missing = [label(c, a) for c in ALL for a in arguments(c.parser) if not a.help]
    assert not missing, "arguments without help: " + ", ".join(missing)


def test_every_default_is_stated_in_the_help():
    unstated = [f"{label(c, a)} (default {a.default!r})" for c in ALL for a in arguments(c.parser)
                if has_default(a) and "%(default)s" not in (a.help or "")]
    assert not unstated, "defaults the help does not state with %(default)s: " + ", ".join(unstated)


def test_one_argument_has_one_metavar_everywhere():
    seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for c in ALL:
        for a in arguments(c.parser):
            if (metavar := shown_metavar(a)) is not None:
                seen[a.dest][metavar].append(label(c, a))
    mixed = {dest: dict(by_metavar) for dest, by_metavar in seen.items() if len(by_metavar) > 1}
    assert not mixed, f"the same argument under different metavars: {mixed}"


def test_the_checks_catch_what_they_are_for():
    """Each rule fails on a parser that breaks it (so a green run means something)."""
    parser = argparse.ArgumentParser(prog="prefpipe")
    sub = parser.add_subparsers()
    one = sub.add_parser("one", help="first", description="First.")
    one.add_argument("--batch", metavar="ID", help="batch id")
    one.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    one.add_argument("name")
    two = sub.add_parser("two")
    two.add_argument("--batch", help="batch id")
    found = commands(parser)
    assert [c.path for c in found if not c.help] == ["prefpipe two"]
    assert [label(c, a) for c in found for a in arguments(c.parser) if not a.help] == ["prefpipe one name"]
    assert [label(c, a) for c in found for a in arguments(c.parser)
            if has_default(a) and "%(default)s" not in (a.help or "")] == ["prefpipe one --port"]
    assert {shown_metavar(a) for c in found for a in arguments(c.parser) if a.dest == "batch"} == {"ID", "BATCH"}
