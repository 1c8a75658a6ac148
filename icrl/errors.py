"""The errors icrl reports to a user as one line and an exit status, never as a traceback."""

from __future__ import annotations


class IcrlError(Exception):
    """A problem the user can act on; the message names the file, key or stage concerned."""

    exit_code = 1


class BadInputError(IcrlError):
    """Bad input (a config, dataset, checkpoint or argument): exit status 2."""

    exit_code = 2
