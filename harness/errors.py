"""Errors the harness reports to users: each names the key, the value and what is allowed."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error; the CLI prints its message and exits 2 without a traceback."""


class ConfigError(HarnessError):
    def __init__(self, key: str, value: object, allowed: str, where: str = ""):
        self.key, self.value, self.allowed, self.where = key, value, allowed, where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}invalid value for '{key}': {value!r} (allowed: {allowed})")
