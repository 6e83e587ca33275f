"""Every source by one name: :func:`load` reads a spec (``'digits'``, ``'cifar10'``, a
folder, an archive, RecordIO) into a :class:`~gluonres.data.Data`.
"""
import numbers
import os

from gluonres.data.arrays import Data
from gluonres.data.recordio import read_recordio
from gluonres.data.sources import cifar10_binary, digits, gluon_cifar10, image_folder, resolve_root
from gluonres.data.splits import split_validation
from gluonres.errors import DataError


# ---------------------------------------------------------------------------- sources
def load(spec, size=None, val_size=0, seed=0, progress=True):
    """Load a dataset by name or path into memory.

    Parameters
    ----------
    spec : str
        ``'digits'``, ``'cifar10'``, an image-folder root (or ``.tar.gz``), a folder of
        class folders, a RecordIO folder or a ``.rec`` file.
    size : int, optional
        Bring every image to ``size`` x ``size`` (shorter side resized, centre crop);
        by default images are kept as they are and must all have one size.
    val_size : int or float, default 0
        Hold out this many training images (or this fraction) as a validation split,
        chosen by ``seed``: the paper's 45k/5k split is ``val_size=5000``.
    seed : int, default 0
    progress : bool, default True
        Progress bars on standard error while decoding.

    Returns
    -------
    Data

    Raises
    ------
    DataError
        For a missing, empty or unreadable dataset, naming the problem and the fix.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or size < 1):
        raise DataError(f"image size {size!r} is not a whole number of pixels of at least 1; "
                        "pass e.g. --size 32, or no size to keep the images as they are")
    if spec == "digits":
        data = digits()
    elif spec == "cifar10":
        data = gluon_cifar10()
    else:
        data = _load_path(spec, size, progress)
    if size is not None:  # the built-in sets are 32x32
        data.train = data.train.resized(size)
        if data.test is not None:
            data.test = data.test.resized(size)
    if val_size:
        data.train, data.val = split_validation(data.train, val_size, seed)
    return data


def _load_path(path, size, progress):
    if path.endswith(".rec"):
        return Data(path, read_recordio(path, size))
    root = resolve_root(path)
    names = os.listdir(root)
    if any(n.startswith("data_batch_") and n.endswith(".bin") for n in names):
        return cifar10_binary(root, path)
    if any(n.startswith("data_batch_") and "." not in n
           and os.path.isfile(os.path.join(root, n)) for n in names):
        raise DataError(f"{path!r} holds CIFAR-10's python-version batches, which are pickles "
                        "that gluonres never loads (unpickling runs code from the file); "
                        "use the binary version (cifar-10-binary.tar.gz: data_batch_N.bin, "
                        "test_batch.bin) or an image folder")
    # exists, not isfile: a train.rec that is not a regular file is refused, not ignored
    if os.path.lexists(os.path.join(root, "train.rec")):
        test = os.path.join(root, "test.rec")
        return Data(path, read_recordio(os.path.join(root, "train.rec"), size),
                    read_recordio(test, size) if os.path.lexists(test) else None)
    if os.path.isdir(os.path.join(root, "train")):
        train = image_folder(root, "train", size, progress)
        test = None
        if os.path.isdir(os.path.join(root, "test")):
            test = image_folder(root, "test", size, progress)
            if test.classes != train.classes:
                raise DataError(f"{path!r}: test/ has classes {test.classes} but train/ has "
                                f"{train.classes}; give both splits the same class folders")
        return Data(path, train, test)
    return Data(path, image_folder(root, None, size, progress))
