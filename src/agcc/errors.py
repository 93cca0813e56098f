"""The project's own error types: expected failures the command line reports in one line.

Anything else that escapes a stage is a bug and keeps its traceback. Each type also derives
from the builtin it refines, so ``except ValueError`` keeps catching bad input.
"""

from __future__ import annotations


class AgccError(Exception):
    """An expected failure: bad parameters, or input that is missing or cannot be used."""


class ConfigError(AgccError, ValueError):
    """Parameters that are invalid, inconsistent or ask for something not implemented."""


class DataError(AgccError, ValueError):
    """Input data that cannot be used; the message names the file (or item) and the reason."""


class MissingInputError(AgccError, FileNotFoundError):
    """An input file or folder that is not there; the message says which stage makes it."""
