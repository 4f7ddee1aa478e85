"""The one error type of the offline bag path."""
from __future__ import annotations


class BagError(Exception):
    """A bag or dataset that cannot be read or written; the message names the path and the cause."""
