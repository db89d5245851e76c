"""Argument mistakes on every ``proxygate`` command: named when plainly an option, never echoed.

The commands are found by walking the parser, so a command registered later is
covered here without a line of its own.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from proxygate import __version__
from proxygate.cli import build_parser, main

SECRET = "Zq9-hunter2"


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield parser
    for action in subparsers:
        for sub in dict.fromkeys(action.choices.values()):
            yield from _leaves(sub)


LEAVES = {leaf.prog.removeprefix("proxygate "): leaf for leaf in _leaves(build_parser())}


def _argv(leaf: argparse.ArgumentParser) -> list[str]:
    """The command's words and a placeholder for each positional, so none is left to fill."""
    words = leaf.prog.split()[1:]
    positionals = [a for a in leaf._actions if not a.option_strings and a.nargs in (None, "?")]
    return [*words, *("x" for _ in positionals)]


def _options(leaf: argparse.ArgumentParser, *, kind: type[argparse.Action] | None = None
             ) -> list[argparse.Action]:
    return [a for a in leaf._actions if a.option_strings and a.dest != "help"
            and (kind is None or isinstance(a, kind))]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out + err


def test_every_current_command_is_covered() -> None:
    assert {"users add", "users set", "users delete", "users verify", "users list",
            "serve"} <= set(LEAVES)


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_an_unknown_option_is_named_under_the_commands_own_usage(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    leaf = LEAVES[command]
    status, output = _run(capsys, [*_argv(leaf), "--frobnicate"])
    assert status == 2
    assert f"usage: {leaf.prog} " in output
    assert "usage: proxygate [-h]" not in output
    assert f"{leaf.prog}: error: unknown option --frobnicate" in output
    assert "did you mean" not in output  # nothing is close to it


@pytest.mark.parametrize("command", sorted(c for c in LEAVES if _options(LEAVES[c])))
def test_a_misspelt_option_gets_the_closest_option_of_that_command(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    leaf = LEAVES[command]
    for action in _options(leaf):
        option = max(action.option_strings, key=len)
        typo = option[:3] + option[4:]  # one letter dropped: --usrs for --users
        status, output = _run(capsys, [*_argv(leaf), typo])
        assert status == 2
        assert f"unknown option {typo} (did you mean {option}?)" in output


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_a_stray_argument_or_an_options_value_is_never_echoed(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    leaf = LEAVES[command]
    for extra in ([SECRET], ["--password", SECRET], [f"--password={SECRET}"], [f"-{SECRET}!"],
                  [SECRET, "--frobnicate"]):
        status, output = _run(capsys, [*_argv(leaf), *extra])
        assert status == 2
        assert SECRET not in output
        assert f"usage: {leaf.prog} " in output
        assert "never taken from the command line" in output


def _refusing(action: argparse.Action) -> bool:
    """Options argparse itself refuses a wrong value for, quoting it in its message."""
    return action.nargs == 0 or action.choices is not None or action.type is not None


@pytest.mark.parametrize("command", sorted(c for c in LEAVES
                                            if any(map(_refusing, _options(LEAVES[c])))))
def test_a_value_argparse_refuses_is_never_echoed(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    leaf = LEAVES[command]
    for action in filter(_refusing, _options(leaf)):
        option = max(action.option_strings, key=len)
        status, output = _run(capsys, [*_argv(leaf), f"{option}={SECRET}"])
        assert status == 2, option
        assert SECRET not in output, (option, output)
        assert f"usage: {leaf.prog} " in output


def test_a_flag_given_a_value_says_it_takes_none_without_repeating_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, output = _run(capsys, ["users", "add", "f", "alice", f"--password-stdin={SECRET}"])
    assert status == 2
    assert "argument --password-stdin: takes no value" in output
    assert SECRET not in output


def test_an_invalid_choice_lists_the_choices_and_suggests_one_without_echoing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, output = _run(capsys, ["users", "add", "f", "alice", "--scheme", "bcryp"])
    assert status == 2
    assert "argument --scheme: invalid choice (choose from bcrypt, sha256_crypt" in output
    assert "did you mean bcrypt?" in output
    assert "bcryp'" not in output and "bcryp " not in output


def test_an_unknown_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    status, output = _run(capsys, ["servve"])
    assert status == 2
    assert "did you mean serve?" in output
    assert "servve" not in output


def test_a_number_that_is_not_one_is_refused_without_echo(capsys: pytest.CaptureFixture[str]) -> None:
    status, output = _run(capsys, ["serve", "--port", SECRET])
    assert status == 2
    assert "argument --port: not a valid int" in output
    assert SECRET not in output


def test_an_unknown_top_level_option_gets_the_top_level_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, output = _run(capsys, ["--verson"])
    assert status == 2
    assert "usage: proxygate [-h] [--version]" in output
    assert "unknown option --verson (did you mean --version?)" in output


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    status, output = _run(capsys, ["--version"])
    assert status == 0
    assert output == f"proxygate {__version__}\n"
    assert __version__ == version("proxygate")


def test_an_unexpected_error_is_named_with_its_place_but_not_its_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Known mistakes are CommandErrors with their own message; anything else is a bug,
    # whose text could quote a hash.
    import proxygate.cli.users

    def broken(args: argparse.Namespace) -> int:
        raise ValueError(f"cannot parse {SECRET}")

    monkeypatch.setattr(proxygate.cli.users, "_users_list", broken)
    status, output = _run(capsys, ["users", "list", "f"])
    assert status == 2
    assert re.fullmatch(r"proxygate: error: unexpected ValueError at \S+test_cli_arguments\.py:\d+; "
                        r"please report it\n", output), output
    assert SECRET not in output
