"""Errors a VJ sees as one clear line (the CLI prints the message, never a traceback)."""


class UserError(RuntimeError):
    """Something about the user's input or machine; the message says what and what to do."""

    exit_code = 2


class SourceError(UserError):
    """A source cannot be opened or has gone."""


class SinkError(UserError):
    """A sink cannot be opened on this machine (the message names the alternatives)."""


class ModelError(UserError):
    """Weights missing, wrong or too large for the GPU."""
