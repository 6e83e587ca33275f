"""Crash-safe training checkpoints: two generations, each verified by its SHA-256.

A run folder keeps its newest checkpoint in ``checkpoint.params`` and the one before in
``checkpoint.prev.params``; ``checkpoint.json`` records the SHA-256, epoch and iteration
of both. A new checkpoint is written to a temporary file, the current one becomes the
previous one (a hard link, replaced atomically), the manifest is rewritten atomically
and only then is the temporary file renamed into place. Whenever a process dies, each
file is either complete or absent, and every complete file's digest is in the manifest,
so :meth:`CheckpointStore.load` can trust exactly the files whose digest it finds there.
A file that is damaged afterwards (truncated, edited, bad disk) is reported by name and
the run falls back to the previous generation.
"""
import contextlib
import json
import os
import shutil
from dataclasses import dataclass

from gluonres import io
from gluonres._files import atomic_path, sha256_of, write_text
from gluonres.errors import CorruptFileError, GluonresError


LATEST = "checkpoint.params"
PREVIOUS = "checkpoint.prev.params"
MANIFEST = "checkpoint.json"
MANIFEST_FORMAT = "gluonres-checkpoints/1"
#: Format tag inside every checkpoint's metadata.
FORMAT = "gluonres-checkpoint/1"


@dataclass
class Loaded:
    """A verified checkpoint: its file, arrays, metadata and what was skipped."""

    path: str
    arrays: dict
    meta: dict
    note: str = None  # why a newer file was passed over, for the run's log


class CheckpointStore:
    """The checkpoints of one run folder.

    Parameters
    ----------
    out_dir : str
        The run folder.
    """

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self._good = None  # manifest entry of the newest trusted checkpoint on disk

    def path(self, name=LATEST):
        """Full path of a checkpoint file (``LATEST``, ``PREVIOUS`` or ``MANIFEST``)."""
        return os.path.join(self.out_dir, name)

    def exists(self):
        """Whether the folder holds a checkpoint (or the remains of one)."""
        return any(os.path.exists(self.path(n)) for n in (LATEST, PREVIOUS, MANIFEST))

    def _manifest(self):
        """``({sha256: entry}, problem)``; ``None`` digests for folders without one."""
        path = self.path(MANIFEST)
        if not os.path.isfile(path):
            return None, None
        try:
            with open(path) as f:
                manifest = json.load(f)
            if manifest.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}")
            return {e["sha256"]: e for e in manifest["checkpoints"]}, None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return None, f"{path!r} is unreadable ({err}), so the checkpoints were checked " \
                         "by loading them only"

    def load(self):
        """The newest checkpoint whose SHA-256 is recorded and whose content loads.

        Returns
        -------
        Loaded

        Raises
        ------
        GluonresError
            If the folder holds no checkpoint.
        CorruptFileError
            If no checkpoint passes the checks; every file is named with its problem.
        """
        names = [n for n in (LATEST, PREVIOUS) if os.path.isfile(self.path(n))]
        if not names:
            raise GluonresError(f"no checkpoint to resume in {self.out_dir!r} ({LATEST} is "
                                "missing); drop --resume to start a new run there")
        digests, problem = self._manifest()
        problems = [problem] if problem else []
        good = []
        for name in names:
            path = self.path(name)
            digest = sha256_of(path)
            entry = digests.get(digest) if digests is not None else None
            if digests is not None and entry is None:
                problems.append(f"{path!r} does not match the sha256 recorded in {MANIFEST} "
                                "(truncated or corrupt)")
                continue
            try:
                arrays, meta = io.load_arrays(path)
            except CorruptFileError as err:
                problems.append(str(err).split(";")[0])
                continue
            if meta.get("format") != FORMAT:
                problems.append(f"{path!r} is not a gluonres training checkpoint")
                continue
            good.append((meta["state"]["epoch"], name, arrays, meta, digest))
        if not good:
            raise CorruptFileError(
                f"no usable checkpoint in {self.out_dir!r}: {'; '.join(problems)}; start a "
                "new run in another output folder (the damaged files are left as they are)")
        epoch, name, arrays, meta, digest = max(good, key=lambda g: g[0])
        self._good = {"file": name, "sha256": digest, "epoch": epoch,
                      "iteration": meta["state"]["iteration"]}
        note = None
        if problems:
            note = (f"{'; '.join(problems)}; resuming from {self.path(name)!r} (epoch {epoch}) "
                    "instead")
        return Loaded(self.path(name), arrays, meta, note)

    def save(self, arrays, meta):
        """Write a new generation; the newest trusted one becomes the previous one.

        Parameters
        ----------
        arrays : dict of str to mxnet.nd.NDArray
        meta : dict
            Checkpoint metadata; ``meta['state']`` has ``epoch`` and ``iteration``.
        """
        state = meta["state"]
        with atomic_path(self.path(LATEST)) as tmp:
            io.write_arrays(tmp, arrays, meta)
            entries = [{"file": LATEST, "sha256": sha256_of(tmp), "epoch": state["epoch"],
                        "iteration": state["iteration"]}]
            if self._good is not None:
                if self._good["file"] == LATEST:
                    _link_atomically(self.path(LATEST), self.path(PREVIOUS))
                entries.append({**self._good, "file": PREVIOUS})
            write_text(self.path(MANIFEST), json.dumps(
                {"format": MANIFEST_FORMAT, "checkpoints": entries}, indent=1) + "\n")
        self._good = entries[0]


def _link_atomically(src, dst):
    """Make ``dst`` the same content as ``src``, replacing ``dst`` atomically."""
    with atomic_path(dst) as tmp:
        os.remove(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # file systems without hard links
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            shutil.copyfile(src, tmp)
