"""The error of the dataset readers."""


class DatasetError(ValueError):
    """A dataset folder that cannot be read; the message names the path and the cause."""
