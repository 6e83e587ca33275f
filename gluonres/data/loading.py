"""Every source by one name: :func:`load` reads a spec (``'digits'``, ``'cifar10'``, a
folder, an archive, RecordIO) into a :class:`~gluonres.data.Data`.
"""
import numbers
import os

from gluonres.data.arrays import Data
from gluonres.data.images import check_channels
from gluonres.data.recordio import read_recordio
from gluonres.data.sources import cifar10_binary, digits, gluon_cifar10, image_folder, resolve_root
from gluonres.data.splits import split_validation
from gluonres.errors import DataError


# ---------------------------------------------------------------------------- sources
def load(spec, size=None, val_size=0, seed=0, progress=True, shorter_side=None, channels=3):
    """Load a dataset by name or path into memory.

    Parameters
    ----------
    spec : str
        ``'digits'``, ``'cifar10'``, an image-folder root (or ``.tar.gz``), a folder of
        class folders, a RecordIO folder or a ``.rec`` file.
    size : int, optional
        Bring every image to ``size`` x ``size``: shorter side resized to
        ``shorter_side``, centre crop (:func:`~gluonres.data.images.fit_pixels`, as the
        export runtime does); by default images are kept as they are and must all have
        one size.
    val_size : int or float, default 0
        Hold out this many training images (or this fraction) as a validation split,
        chosen by ``seed``: the paper's 45k/5k split is ``val_size=5000``.
    seed : int, default 0
    progress : bool, default True
        Progress bars on standard error while decoding.
    shorter_side : int, optional
        With ``size``: the shorter side before the crop, default ``size`` (the whole
        shorter side is kept); recorded as ``Data.resize`` where some images were stored
        at other sizes (``None`` where all were already ``size`` x ``size``).
    channels : {3, 1}, default 3
        RGB, or grey (OpenCV's conversion of the RGB decode).

    Returns
    -------
    Data

    Raises
    ------
    DataError
        For a missing, empty or unreadable dataset, naming the problem and the fix.
    """
    for name, value in (("image size", size), ("shorter side", shorter_side)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, numbers.Integral) or value < 1):
            raise DataError(f"{name} {value!r} is not a whole number of pixels of at least 1; "
                            "pass e.g. --size 32, or no size to keep the images as they are")
    check_channels(channels)
    fit = {"size": size, "shorter_side": shorter_side if size else None, "channels": channels}
    if spec == "digits":
        data = _fit_arrays(digits(), fit)
    elif spec == "cifar10":
        data = _fit_arrays(gluon_cifar10(), fit)
    else:
        data = _load_path(spec, fit, progress)
    # a network trained on images stored at its size takes no others (an export refuses
    # them rather than shrinking a photo to 32x32); one trained on resized images resizes
    resized = any(split is not None and split.resized_from_other_sizes
                  for split in (data.train, data.test))
    data.resize = ({"shorter_side": shorter_side or size, "center_crop": True} if resized
                   else None)
    if val_size:
        data.train, data.val = split_validation(data.train, val_size, seed)
    return data


def _fit_arrays(data, fit):
    """Images that were arrays before (the built-in sets, CIFAR-10's binary batches) fitted
    as image files are when they are decoded."""
    data.train = data.train.resized(**fit)
    if data.test is not None:
        data.test = data.test.resized(**fit)
    return data


def _load_path(path, fit, progress):
    """The dataset at ``path``, its images fitted (``fit``: options of
    :func:`~gluonres.data.images.fit_pixels`)."""
    if path.endswith(".rec"):
        return Data(path, read_recordio(path, **fit))
    root = resolve_root(path)
    names = os.listdir(root)
    if any(n.startswith("data_batch_") and n.endswith(".bin") for n in names):
        return _fit_arrays(cifar10_binary(root, path), fit)
    if any(n.startswith("data_batch_") and "." not in n
           and os.path.isfile(os.path.join(root, n)) for n in names):
        raise DataError(f"{path!r} holds CIFAR-10's python-version batches, which are pickles "
                        "that gluonres never loads (unpickling runs code from the file); "
                        "use the binary version (cifar-10-binary.tar.gz: data_batch_N.bin, "
                        "test_batch.bin) or an image folder")
    # exists, not isfile: a train.rec that is not a regular file is refused, not ignored
    if os.path.lexists(os.path.join(root, "train.rec")):
        test = os.path.join(root, "test.rec")
        return Data(path, read_recordio(os.path.join(root, "train.rec"), **fit),
                    read_recordio(test, **fit) if os.path.lexists(test) else None)
    if os.path.isdir(os.path.join(root, "train")):
        train = image_folder(root, "train", progress=progress, **fit)
        test = None
        if os.path.isdir(os.path.join(root, "test")):
            test = image_folder(root, "test", progress=progress, **fit)
            if test.classes != train.classes:
                raise DataError(f"{path!r}: test/ has classes {test.classes} but train/ has "
                                f"{train.classes}; give both splits the same class folders")
        return Data(path, train, test)
    return Data(path, image_folder(root, None, progress=progress, **fit))
