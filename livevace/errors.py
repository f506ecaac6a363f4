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


def describe(err: BaseException) -> str:
    """One line for a log: a UserError's own message (whole: it says what to do), otherwise
    its type and the first line of its message, with the next one where the first only
    introduces it ("backend='inductor' raised:"), at most 200 characters."""
    if isinstance(err, UserError):
        return str(err)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[:2] if lines and lines[0].endswith(":") else lines[:1])[:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
