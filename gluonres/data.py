"""Datasets: image-folder roots (also as .tar.gz archives).

An image-folder root holds ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (the
extracted shared CIFAR-10, or any user folder with one subfolder per class).
"""
import os
import shutil
import tarfile
import tempfile

from mxnet.gluon.data.vision import ImageFolderDataset

from .errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def cache_dir():
    """Where archives are extracted: ``$GLUONRES_CACHE`` or ``~/.cache/gluonres``."""
    return os.environ.get("GLUONRES_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                         "gluonres"))


def resolve_root(path):
    """An image-folder root from a folder or a ``.tar.gz`` archive (extracted once).

    Raises
    ------
    DataError
        If the path does not exist.
    """
    if not os.path.exists(path):
        raise DataError(f"data path {path!r} does not exist; pass an image-folder root with "
                        "train/ and test/ subfolders (or its .tar.gz archive)")
    if os.path.isdir(path):
        return path
    if not path.endswith((".tar.gz", ".tgz", ".tar")):
        raise DataError(f"data path {path!r} is a file but not a .tar.gz archive; pass an "
                        "image-folder root or its archive")
    name = os.path.basename(path).split(".")[0]
    root = os.path.join(cache_dir(), name)
    if not os.path.isdir(root):
        os.makedirs(cache_dir(), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir())
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            os.replace(tmp, root)  # a half-extracted archive never looks complete
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def image_folder(root, split=None):
    """An ``ImageFolderDataset`` over ``root/split`` after checking it holds images.

    Parameters
    ----------
    root : str
        Image-folder root (or ``.tar.gz``); with ``split=None`` the root itself holds
        the class folders.
    split : str, optional
        ``'train'`` or ``'test'``.

    Raises
    ------
    DataError
        For a missing folder, a folder without class subfolders, or a class folder
        without images.
    """
    root = resolve_root(root)
    folder = os.path.join(root, split) if split else root
    if not os.path.isdir(folder):
        raise DataError(f"{folder!r} does not exist; an image-folder root needs a {split}/ "
                        "subfolder with one folder of images per class")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise DataError(f"{folder!r} has no class subfolders; put the images of each class "
                        "in a folder named after the class")
    for c in classes:
        if not any(f.lower().endswith(IMAGE_EXTENSIONS)
                   for f in os.listdir(os.path.join(folder, c))):
            raise DataError(f"class folder {os.path.join(folder, c)!r} has no images "
                            f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
    return ImageFolderDataset(folder, flag=1)
