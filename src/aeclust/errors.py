"""Exceptions and warnings that carry a message meant for the person running aeclust.

The CLI prints an :class:`AeclustError` as one line on stderr and exits with
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AeclustError(Exception):
    """Base class for errors caused by input or environment, not by a bug."""


class DataNotFoundError(AeclustError, FileNotFoundError):
    """The data set is neither on disk nor downloadable."""


class ChecksumError(AeclustError):
    """A file on disk does not match its published checksum."""


class UnsafeArchiveError(AeclustError):
    """An archive member would be written outside the target directory."""


class InvalidInputError(AeclustError, ValueError):
    """Arrays or arguments that aeclust cannot work with."""


class ConvergenceWarning(UserWarning):
    """K-means stopped at ``max_iter`` before the assignments stopped changing."""
