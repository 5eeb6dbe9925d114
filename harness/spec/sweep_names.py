"""Sweep names are names: one path component of safe characters, so a sweep can only live directly under --root.

Why a rule rather than path cleaning: a name from a hostile sweep file (`name: ../../..`) or a typo (`--name /x`)
must be refused, not silently rewritten into a directory the user did not ask for.
"""

from __future__ import annotations

import re

from harness.errors import HarnessError

NAME_RULE = "one path component of letters, digits, '.', '_' or '-', not starting with '.'"
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_LEN = 200


def check_sweep_name(name: object, where: str = "--name") -> str:
    """Return `name` if it is a safe sweep name; raise HarnessError naming where it came from and the rule."""
    text = str(name)
    if isinstance(name, bool) or not isinstance(name, (str, int)) or len(text) > MAX_LEN or not _NAME.fullmatch(text):
        raise HarnessError(f"invalid sweep name {text!r} from {where} (allowed: {NAME_RULE}, at most {MAX_LEN} "
                           f"characters)")
    return text
