"""Errors a user can act on: the CLI prints one line and exits 2.

Raise a :class:`UserError` (or a subclass) with a message that says what was
wrong and what to do. The CLI's top level catches the family in one place; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the job ran and did not succeed
EXIT_USAGE = 2  # bad input: flags, files, environment
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input or environment; the message is one actionable line."""

    exit_code: int = EXIT_USAGE


class ConfigError(UserError, ValueError):
    """A flag or configuration value outside what AWS (or this machine) allows."""


class ResourceLimitError(UserError):
    """The planned work does not fit this machine's disk or memory."""


class DefinitionFileError(UserError):
    """A state machine, template or input file that cannot be read or is invalid."""


class EnvironmentSetupError(UserError):
    """Something the command needs from the machine is missing (Docker, a profile, a port)."""
