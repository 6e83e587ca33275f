"""Package attributes imported on first use (PEP 562), so that importing a light module
of a package (``gluonres.deploy.runtime``, ``gluonres.train.distributed``) does not load
its heavy siblings."""
import importlib


def lazy_exports(package, names):
    """A module ``__getattr__`` for ``package``: ``names`` maps each exported name to the
    submodule that defines it; any other attribute is tried as a submodule.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict of str to str
        ``{name: submodule}``, e.g. ``{'fit': 'loop'}``.
    """
    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    return __getattr__
