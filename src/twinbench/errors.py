"""Errors shown to users as one line (the CLI turns them into exit code 2)."""


class TwinbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""
