"""The one error type of the data side: bad input named with the file and what to do."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data (split file, file list, frame folder, JPEG); the message names it."""
