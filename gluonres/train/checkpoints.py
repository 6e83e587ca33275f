"""Crash-safe training checkpoints: two generations, each verified by its SHA-256.

A run folder keeps its newest checkpoint in ``checkpoint.params`` and the one before in
``checkpoint.prev.params``; ``checkpoint.json`` records the SHA-256, epoch and iteration
of both. A new checkpoint is written to a temporary file, the current one becomes the
previous one (a hard link, replaced atomically), the manifest is rewritten atomically
and only then is the temporary file renamed into place. Whenever a process dies, each
file is either complete or absent, and every complete file's digest is in the manifest,
so :meth:`CheckpointStore.load` can trust exactly the files whose digest it finds there.
A process killed between the manifest and the rename leaves the new checkpoint complete
under its temporary name, with its digest in the manifest: :meth:`CheckpointStore.load`
trusts it there too, and :meth:`CheckpointStore.tidy` (under the run's lock) finishes the
rename and removes every other temporary file a killed run left. A file that is damaged
afterwards (truncated, edited, bad disk) is reported by name and the run falls back to
the previous generation.

:func:`run_lock` keeps a second process from writing the same run folder.
"""
import contextlib
import json
import os
import shutil
from dataclasses import dataclass

from gluonres import io
from gluonres._files import (atomic_path, deferred_signals, folder_lock, sha256_of, temporaries,
                             write_text)
from gluonres.errors import CorruptFileError, GluonresError


LATEST = "checkpoint.params"
PREVIOUS = "checkpoint.prev.params"
MANIFEST = "checkpoint.json"
MANIFEST_FORMAT = "gluonres-checkpoints/1"
#: Format tag inside every checkpoint's metadata.
FORMAT = "gluonres-checkpoint/1"
#: Files of a run folder written through ``atomic_path``: their temporary files are a
#: killed run's leftovers.
RUN_FILES = (LATEST, PREVIOUS, MANIFEST, "best.params", "weights.params", "log.json",
             "log.csv", "curve.png")


def run_lock(out_dir):
    """Hold the run folder ``out_dir`` for one ``gluonres train`` (a context manager).

    An advisory ``flock`` that a crash releases (:func:`gluonres._files.folder_lock`);
    nested calls in one process share it.

    Raises
    ------
    GluonresError
        If another process holds it: ``... is in use by another gluonres train (pid N);
        wait for it or choose another --out``.
    """
    return folder_lock(out_dir, "gluonres train")


@dataclass
class Loaded:
    """A verified checkpoint: its file, arrays, metadata and what was skipped."""

    path: str
    arrays: dict
    meta: dict
    note: str = None  # why a newer file was passed over, for the run's log
    file: str = None  # its name in the run folder (LATEST for one still under a temp name)


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

    def _pending(self, digests):
        """``[(temporary file, entry)]``: complete new checkpoints a killed run left under
        their temporary name (their digest is the manifest's entry for ``LATEST``)."""
        out = []
        for tmp in temporaries(self.out_dir, LATEST) if digests else ():
            try:
                entry = digests.get(sha256_of(tmp))
            except OSError:  # removed meanwhile by the run that holds the folder
                continue
            if entry is not None and entry["file"] == LATEST:
                out.append((tmp, entry))
        return out

    def tidy(self):
        """Finish what a killed run left half done; call it only under :func:`run_lock`.

        A new checkpoint whose rename never happened is renamed into place (it is complete:
        its digest is in the manifest); every other temporary file of a run file is
        removed. Returns the temporary files handled.
        """
        digests, _ = self._manifest()
        handled = []
        for tmp, entry in self._pending(digests):
            latest = self.path(LATEST)
            if not (os.path.isfile(latest) and sha256_of(latest) == entry["sha256"]):
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, latest)
                handled.append(tmp)
                self._good = dict(entry)  # the newest generation, now under its name
        for tmp in [t for name in RUN_FILES for t in temporaries(self.out_dir, name)]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            handled.append(tmp)
        return handled

    def newest(self):
        """The manifest's entry of the newest checkpoint (``file``, ``epoch`` ...), or
        ``None``; cheap (nothing is verified), for messages."""
        digests, _ = self._manifest()
        entries = [e for e in (digests or {}).values() if os.path.isfile(self.path(e["file"]))]
        return max(entries, key=lambda e: e["epoch"], default=None)

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
        digests, problem = self._manifest()
        pending = [tmp for tmp, _ in self._pending(digests)]
        if not names and not pending:
            if os.path.isfile(self.path(MANIFEST)):
                raise CorruptFileError(
                    f"no usable checkpoint in {self.out_dir!r}: {MANIFEST} is there but no "
                    f"checkpoint file ({LATEST} is missing); start a new run in another output "
                    "folder (the files are left as they are)")
            raise GluonresError(f"no checkpoint to resume in {self.out_dir!r} ({LATEST} is "
                                "missing); drop --resume to start a new run there")
        problems = [problem] if problem else []
        good = []
        # a tie on the epoch goes to the file with its name
        for name, path in [(n, self.path(n)) for n in names] + [(t, t) for t in pending]:
            try:
                digest = sha256_of(path)
            except FileNotFoundError:  # a pending one, renamed meanwhile by the writer
                continue
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
            good.append((meta["state"]["epoch"], name, path, arrays, meta, digest))
        if not good:
            raise CorruptFileError(
                f"no usable checkpoint in {self.out_dir!r}: {'; '.join(problems)}; start a "
                "new run in another output folder (the damaged files are left as they are)")
        epoch, name, path, arrays, meta, digest = max(good, key=lambda g: g[0])
        # a pending file is no generation to keep: the next save starts the pair afresh
        self._good = {"file": name, "sha256": digest, "epoch": epoch,
                      "iteration": meta["state"]["iteration"]} if name in names else None
        note = None
        if problems:
            note = (f"{'; '.join(problems)}; resuming from {path!r} (epoch {epoch}) instead")
        return Loaded(path, arrays, meta, note, name if name in names else LATEST)

    def save(self, arrays, meta):
        """Write a new generation; the newest trusted one becomes the previous one.

        Parameters
        ----------
        arrays : dict of str to mxnet.nd.NDArray
        meta : dict
            Checkpoint metadata; ``meta['state']`` has ``epoch`` and ``iteration``.
        """
        state = meta["state"]
        # Ctrl-C waits for the generation to be complete, rather than losing it
        with deferred_signals(), atomic_path(self.path(LATEST)) as tmp:
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
    if os.path.exists(dst) and os.path.samefile(src, dst):
        # already one file (a run killed after this link): renaming a hard link over
        # another of the same file does nothing and would leave the temporary link behind
        return
    with atomic_path(dst) as tmp:
        os.remove(tmp)
        try:
            os.link(src, tmp)
        except OSError:  # file systems without hard links
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            shutil.copyfile(src, tmp)
