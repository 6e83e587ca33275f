"""Files: atomic writes (a reader sees the old file or the new one, never half of one),
folder locks, SHA-256 digests and JSON encoding of numpy values."""
import contextlib
import glob
import hashlib
import os
import signal
import tempfile
import threading

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


def temporaries(folder, name):
    """The temporary files :func:`atomic_path` leaves for ``folder/name`` when a process
    dies before its rename (``.NAME.*.tmp``)."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")))


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
        _make_levels(folder, created)
        fd, probe = tempfile.mkstemp(prefix=".gluonres-write-test.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise GluonresError(f"cannot write to {option} {folder!r} ({err.strerror or err}); "
                            "pass a folder you can write to") from None
    finally:
        _remove_levels(created)


def _make_levels(folder, created):
    """Create ``folder`` and its missing parents, listing each one made in ``created`` (so
    that :func:`_remove_levels` can take them away again)."""
    path = os.path.abspath(folder)
    missing = []
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for level in reversed(missing):
        os.mkdir(level)
        created.append(level)


#: The lock file :func:`folder_lock` keeps inside a folder while it holds it.
LOCK_NAME = ".gluonres.lock"
_held = {}  # lock file -> [fd, depth]: this process's locks (a nested lock is the same one)


@contextlib.contextmanager
def folder_lock(folder, holder, option="--out"):
    """Hold an exclusive advisory lock on ``folder`` for the block.

    The lock is ``fcntl.flock`` on ``folder/.gluonres.lock``: the kernel releases it when
    the holder dies, however it dies, so a crash never leaves a folder locked. The file
    holds the holder's pid (for the message of whoever is refused) and is removed on
    release, as are the folder levels created for it when nothing else was written there.
    Nested locks of one folder in one process are the same lock.

    Parameters
    ----------
    folder : str
        Created if missing.
    holder : str
        What holds it, for the message (``'gluonres train'``).
    option : str
        The option that named the folder, for the message.

    Raises
    ------
    GluonresError
        If another process holds the lock (naming its pid) or the folder cannot be written;
        the refused process changes nothing.
    """
    path = os.path.join(os.path.realpath(folder), LOCK_NAME)
    if path in _held:
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    created = []
    try:
        fd = _lock(folder, path, holder, option, created)
    except BaseException:
        _remove_levels(created)
        raise
    _held[path] = [fd, 1]
    try:
        yield
    finally:
        del _held[path]
        # unlink before unlocking: a process that opened the file meanwhile sees on
        # locking that it is no longer the folder's lock file, and starts again
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)
        _remove_levels(created)


def _lock(folder, path, holder, option, created):
    import fcntl  # POSIX; imported here so that the rest of the module imports anywhere

    try:
        _make_levels(folder, created)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise GluonresError(f"{folder!r} is in use by another {holder} (pid {pid}); "
                                    f"wait for it or choose another {option}") from None
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                break
            os.close(fd)  # the previous holder removed this file while we waited: again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd
    except OSError as err:
        raise GluonresError(f"cannot write to {option} {folder!r} ({err.strerror or err}); "
                            "pass a folder you can write to") from None


def _remove_levels(created):
    for level in reversed(created):
        with contextlib.suppress(OSError):  # not empty: the work wrote something there
            os.rmdir(level)


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal: SIGINT or SIGTERM, raised like Ctrl-C's
    KeyboardInterrupt so that the same clean-up runs; ``signum`` names the signal."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


_pending_stop = []  # the signals received inside stop_on_signals; None: clean-up began


@contextlib.contextmanager
def stop_on_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """SIGINT and SIGTERM raise :class:`Stopped` during the block, and are remembered.

    Python drops an exception raised while it runs a ``__del__`` method ("Exception
    ignored in ..."), and MXNet frees arrays in ``__del__`` all the time: a signal that
    lands there would be lost and the run would go on. :func:`raise_if_stopped`, called
    where a loop may stop, raises it again. Outside the main thread, where Python cannot
    set handlers, the block runs as it is.

    Yields
    ------
    list
        The signals received so far. Appending ``None`` says the block's clean-up has
        begun: from then on a signal no longer interrupts it (a second Ctrl-C must not
        leave child processes running).
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return

    def handler(signum, frame):
        if None in _pending_stop:
            return
        _pending_stop.append(signum)
        raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield _pending_stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _pending_stop.clear()


def raise_if_stopped():
    """Raise :class:`Stopped` again for a signal whose first one was lost (see
    :func:`stop_on_signals`); nothing when no signal came."""
    if _pending_stop and _pending_stop[-1] is not None:
        raise Stopped(_pending_stop[-1])


@contextlib.contextmanager
def deferred_signals(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold SIGINT and SIGTERM back during the block; deliver them after it.

    For writes that belong together (a checkpoint generation and its manifest): Ctrl-C
    then stops the run after them rather than between them. Outside the main thread,
    where Python cannot set handlers, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum in caught:
            signal.raise_signal(signum)


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
