"""Checks shared by every model family."""
from gluonres.errors import GluonresError


def check_classes(classes):
    """Refuse a class count that is not a positive integer.

    Raises
    ------
    GluonresError
        If ``classes`` is not an ``int`` >= 1 (a ``ValueError``, as before).
    """
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise GluonresError(f"classes must be a positive integer, got {classes!r}; pass "
                            "e.g. classes=10")
