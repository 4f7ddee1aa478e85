"""The one error type of the conversions package."""
from __future__ import annotations


class ConversionError(ValueError):
    """A message that cannot be converted; the text names the encoding, sizes or field at fault."""
