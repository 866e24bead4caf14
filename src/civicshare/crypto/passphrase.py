"""Getting the keystore passphrase: from the environment, or by asking at a terminal.

Servers and scripts set ``CIVICSHARE_PASSPHRASE``; a person at a terminal is prompted (without
echo). With neither we refuse with a message that says what to do, rather than hang waiting on a
pipe.
"""

from __future__ import annotations

import getpass
import hmac
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from civicshare.errors import InvalidInput, KeystoreLocked

ENV_VAR = "CIVICSHARE_PASSPHRASE"
MIN_NEW_PASSPHRASE_LENGTH = 8


def check_new_passphrase(passphrase: str) -> str:
    """Refuse a passphrase too weak to protect a new keystore (empty, or under 8 characters)."""
    if not passphrase:
        raise KeystoreLocked("An empty passphrase cannot protect a keystore; choose a passphrase.")
    if len(passphrase) < MIN_NEW_PASSPHRASE_LENGTH:
        raise InvalidInput(
            f"The new keystore passphrase is too short ({len(passphrase)} characters): use at least "
            f"{MIN_NEW_PASSPHRASE_LENGTH}, and preferably a phrase of four or more words."
        )
    return passphrase


def passphrase_from_env_or_prompt(
    env: str = ENV_VAR,
    *,
    confirm: bool = False,
    prompt: str = "Keystore passphrase: ",
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> str:
    """The passphrase from ``$env``, else from a no-echo prompt when stdin is a terminal.

    ``confirm=True`` is for creating a keystore (or changing its passphrase): the passphrase is
    asked twice at a terminal, and a passphrase under 8 characters is refused. An empty passphrase
    is always refused. ``environ`` and ``stdin`` default to the process's own.
    """
    environ = os.environ if environ is None else environ
    stdin = sys.stdin if stdin is None else stdin
    from_env = environ.get(env)
    if from_env is not None:
        if not from_env:
            raise KeystoreLocked(f"{env} is set but empty: set it to the keystore passphrase.")
        return check_new_passphrase(from_env) if confirm else from_env

    if not (stdin is not None and stdin.isatty()):
        raise KeystoreLocked(
            f"The keystore is locked and there is no terminal to ask for its passphrase: set {env} to the passphrase."
        )
    passphrase = getpass.getpass(prompt)
    if not passphrase:
        raise KeystoreLocked("No passphrase was entered, so the keystore stays locked.")
    if confirm:
        check_new_passphrase(passphrase)
        again = getpass.getpass("Repeat the passphrase: ")
        if not hmac.compare_digest(again.encode("utf-8"), passphrase.encode("utf-8")):
            raise InvalidInput("The two passphrases entered do not match; nothing was changed.")
    return passphrase
