"""User-facing errors: each names the problem and the fix.

The command line prints ``GluonresError`` messages on one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class GluonresError(ValueError):
    """Bad input from a user: a message that names the problem and the fix."""


class UnknownModelError(GluonresError, KeyError):
    """A model name that is not registered."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


class WeightsMismatchError(GluonresError):
    """A weights file that does not belong to the model it is loaded into."""


class CorruptFileError(GluonresError):
    """A truncated or damaged file (params, checkpoint, manifest)."""


class DataError(GluonresError):
    """A missing, empty or unreadable dataset or image."""


class TrainingDivergedError(GluonresError):
    """The loss became NaN or infinite."""
