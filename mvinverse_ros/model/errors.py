"""The model package's one error type."""


class ModelError(RuntimeError):
    """A model that cannot be built, loaded or saved; the message names the file/key and the cause."""
