"""Getting the passphrase: environment first, then a terminal prompt, otherwise a clear refusal."""

from __future__ import annotations

import getpass
import io
from collections.abc import Iterator

import pytest

from civicshare.crypto import check_new_passphrase, passphrase_from_env_or_prompt
from civicshare.errors import InvalidInput, KeystoreLocked


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    queue: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": queue.pop(0))
    yield queue


def test_environment_wins() -> None:
    env = {"CIVICSHARE_PASSPHRASE": "from the environment"}
    assert passphrase_from_env_or_prompt(environ=env, stdin=io.StringIO()) == "from the environment"


def test_another_variable_name() -> None:
    assert passphrase_from_env_or_prompt("OTHER", environ={"OTHER": "abc"}, stdin=io.StringIO()) == "abc"


def test_empty_environment_value_is_refused() -> None:
    with pytest.raises(KeystoreLocked, match="empty"):
        passphrase_from_env_or_prompt(environ={"CIVICSHARE_PASSPHRASE": ""}, stdin=io.StringIO())


def test_no_terminal_says_to_set_the_variable() -> None:
    with pytest.raises(KeystoreLocked, match="set CIVICSHARE_PASSPHRASE"):
        passphrase_from_env_or_prompt(environ={}, stdin=io.StringIO())


def test_prompts_at_a_terminal(answers: list[str]) -> None:
    answers.append("typed passphrase")
    assert passphrase_from_env_or_prompt(environ={}, stdin=_Tty()) == "typed passphrase"


def test_empty_prompt_answer_is_refused(answers: list[str]) -> None:
    answers.append("")
    with pytest.raises(KeystoreLocked):
        passphrase_from_env_or_prompt(environ={}, stdin=_Tty())


def test_confirm_asks_twice(answers: list[str]) -> None:
    answers.extend(["a new passphrase", "a new passphrase"])
    assert passphrase_from_env_or_prompt(confirm=True, environ={}, stdin=_Tty()) == "a new passphrase"
    answers.extend(["a new passphrase", "a typo passphrase"])
    with pytest.raises(InvalidInput, match="do not match"):
        passphrase_from_env_or_prompt(confirm=True, environ={}, stdin=_Tty())


def test_new_passphrases_under_eight_characters_are_refused(answers: list[str]) -> None:
    answers.append("1234567")
    with pytest.raises(InvalidInput, match="too short"):
        passphrase_from_env_or_prompt(confirm=True, environ={}, stdin=_Tty())
    with pytest.raises(InvalidInput):
        passphrase_from_env_or_prompt(confirm=True, environ={"CIVICSHARE_PASSPHRASE": "short"})
    # unlocking an existing keystore never second-guesses the passphrase's length
    assert passphrase_from_env_or_prompt(environ={"CIVICSHARE_PASSPHRASE": "short"}) == "short"
    assert check_new_passphrase("12345678") == "12345678"
