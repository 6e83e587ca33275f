"""The import-time environment guard."""
import pytest

from gluonres import _env


def test_numpy_guard_names_the_fix(monkeypatch):
    monkeypatch.setattr(_env.numpy, "__version__", "1.26.4")
    with pytest.raises(ImportError) as err:
        _env.check_numpy()
    message = str(err.value)
    assert "\n" not in message
    assert "numpy 1.26.4" in message and "pip install 'numpy==1.23.5'" in message
