"""Every error pi-lakeflow raises on purpose, under one root.

A :class:`PiLakeflowError`'s message is one line that says what was wrong and what is accepted
(or what to do), and its ``status`` is the exit status it ends a command with
(pi_lakeflow.exits); the CLI catches the root once. The PI Web API client's errors
(``pi_client.PiError``) are a tree of their own: the client imports nothing of pi-lakeflow.
"""

from __future__ import annotations

from pi_lakeflow import exits


class PiLakeflowError(Exception):
    """The root: a failure pi-lakeflow names in one line; ``status``: the exit status it ends with."""

    status = exits.FAILED


class UsageError(PiLakeflowError):
    """Bad input (the command line, a setting, the config file): exit status 2."""

    status = exits.USAGE


class SettingsError(UsageError):
    """A pipeline setting is missing or wrong; the message names the key and what is accepted."""


class ConfigError(UsageError):
    """The local config file is unreadable or wrong; the message says where and what is accepted."""


class StateInUse(ConfigError):
    """Another pi-lakeflow process works on the same state_dir."""


class StateError(PiLakeflowError):
    """``pi.state_path`` cannot be used as it is; the message names the path and the way out."""


class StatePathError(StateError):
    """``pi.state_path`` cannot be used from this process; the message names the path and the step."""


class StateFormatError(StateError):
    """A state file of a layout this version does not read; the message names the full refresh."""


class StateLostError(StateError):
    """A file the state needs is gone (the state folder was changed by hand); the message names
    the file and the full refresh."""


class WorkspaceError(PiLakeflowError):
    """A workspace call cannot go on; the message says what to change."""
