"""The base of every error a user can fix.

A ``SwitchboardError``'s message says what to do (which file, variable or option to change).
``switchboard/cli.py`` catches it ONCE and prints one line without a traceback, exiting with
``exit_code``: 2 for bad arguments or configuration (as argparse does), 1 otherwise.
``SWITCHBOARD_DEBUG=1`` shows the traceback anyway.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """An error the user can fix; ``str(err)`` says how. Shown as one line, never as a traceback."""

    exit_code: int = 1


class ConfigError(SwitchboardError):
    """A bad argument, setting, environment variable or configuration file (exit 2, like argparse)."""

    exit_code = 2
