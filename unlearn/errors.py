"""The one base class of the errors `unlearn` raises for its users.

Every error the project raises on purpose carries a message written for the person who ran the
command: what is wrong and how to fix it. They all derive from :class:`UnlearnError`, which
``python -m unlearn`` catches to print ``error: <message>`` (no traceback) and exit with the
error's :attr:`~UnlearnError.exit_code` (docs/reliability.md lists the codes). Each subclass also
derives from the built-in exception a caller would expect (``ValueError`` for a bad value, ...),
so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UnlearnError(Exception):
    """An error with a message meant for the user."""

    exit_code = 1


class ConfigError(UnlearnError, ValueError):
    """A configuration value, key or combination that cannot work."""

    exit_code = 2


class RunFolderError(UnlearnError, FileExistsError):
    """The run or output folder cannot be used as asked (it exists, or the run has finished)."""

    exit_code = 2


class DataError(UnlearnError, ValueError):
    """A dataset that is missing, malformed or unusable for the requested run."""


class ModelLoadError(UnlearnError, RuntimeError):
    """A model or tokenizer that cannot be loaded."""


class NonFiniteError(UnlearnError, FloatingPointError):
    """A loss, gradient or weight became NaN or infinite."""


class CollectiveError(UnlearnError, RuntimeError):
    """The processes of a multi-process run stopped waiting for each other."""


class RunInterrupted(UnlearnError, RuntimeError):
    """The run was stopped (SIGTERM) with its state saved; it can be resumed."""

    exit_code = 143


class RunStoppedByUser(RunInterrupted):
    """The run was stopped with Ctrl-C (SIGINT); what was saved is in the message, which says how to resume."""

    exit_code = 130


class DiskFullError(UnlearnError, OSError):
    """A file could not be written because its device is full; what was written before is intact."""
