"""`gluonres train` that dies (``os._exit(9)``, like SIGKILL: no clean-up runs) at the Nth
file rename: the fault injection of tests/train/test_run_safety.py.

Run as ``python tests/train/crash_driver.py N LOG -- train ARGS...``. Every rename
(``os.replace`` and ``os.rename``: atomic writes, checkpoint generations, the manifest, the
final weights, the export) is appended to LOG as its target's path, one per line, before
it happens; the Nth one is not done: the process exits instead. ``N = 0`` never dies.
"""
import os
import sys


def main():
    die_at, log = int(sys.argv[1]), sys.argv[2]
    argv = sys.argv[sys.argv.index("--") + 1:]
    calls = [0]

    def renamer(real):
        def rename(src, dst, **kwargs):
            calls[0] += 1
            with open(log, "a") as f:
                f.write(f"{os.fspath(dst)}\n")
            if calls[0] == die_at:
                os._exit(9)
            return real(src, dst, **kwargs)
        return rename

    os.replace, os.rename = renamer(os.replace), renamer(os.rename)
    from gluonres.cli import main as gluonres
    sys.exit(gluonres(argv))


if __name__ == "__main__":
    main()
