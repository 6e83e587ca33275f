"""Files: atomic writes (a reader sees the old file or the new one, never half of one),
SHA-256 digests and JSON encoding of numpy values."""
import contextlib
import hashlib
import os
import tempfile

from gluonres.errors import GluonresError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched. The
    file gets the mode an ordinary ``open`` would give it (that of the file it replaces,
    else 0666 less the umask), not ``mkstemp``'s private 0600: exported models and
    records are meant to be read by others.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    try:
        os.chmod(tmp, _mode_for(path))
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _mode_for(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        return 0o666 & ~umask


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def check_writable(folder, option="--out"):
    """Prove that files can be created in ``folder`` before any work is done.

    Missing levels are created for the test and removed again, so a refused or later
    failing command leaves nothing behind.

    Raises
    ------
    GluonresError
        Naming the folder, the system's reason and the fix.
    """
    created = []
    try:
        path = os.path.abspath(folder)
        missing = []
        while not os.path.exists(path):
            missing.append(path)
            path = os.path.dirname(path)
        for level in reversed(missing):
            os.mkdir(level)
            created.append(level)
        fd, probe = tempfile.mkstemp(prefix=".gluonres-write-test.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise GluonresError(f"cannot write to {option} {folder!r} ({err.strerror or err}); "
                            "pass a folder you can write to") from None
    finally:
        for level in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(level)


def refuse_existing(paths, force, fix="pass --force to replace it"):
    """Refuse to overwrite a finished result: the one "already exists" check.

    Parameters
    ----------
    paths : str or sequence of str
        Files a command is about to write.
    force : bool
        Replace them (the user said ``--force``).
    fix : str
        What to do instead, for the message.

    Raises
    ------
    GluonresError
        Naming the first existing path and ``fix``.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not force:
        raise GluonresError(f"{existing[0]} already exists; {fix}")


def sha256_of(path, chunk=1 << 20):
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def json_default(obj):
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as Python values."""
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
