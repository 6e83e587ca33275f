"""Export a network for deployment: symbol/params, manifest, and optionally ONNX and INT8.

An export folder holds::

    NAME-symbol.json, NAME-0000.params     the float32 graph (input ``data``, NCHW)
    manifest.json                          input, preprocessing, classes, versions, sha256
    mean.npy                               per-pixel mean, when the preprocessing has one
    NAME.onnx                              with ``onnx=True``: dynamic batch dimension
    NAME-int8-symbol.json, -0000.params    with ``calibration``: oneDNN int8 graph

Everything is written into a hidden staging folder beside the export folder
(``.NAME.export-XXXX``, locked while it is written) and swapped with the folder in one
step when all of it succeeded (:func:`replace_folder`): at every instant the folder holds
either the complete earlier export or the complete new one. Staging folders left by
killed processes are removed by the next export into the same folder.
:mod:`gluonres.deploy.runtime` reads the folder back without any model code.

:func:`export` writes a network; :func:`export_weights` does what ``gluonres export``
does (a registered model with a weights file, optionally calibrated for INT8) and
:class:`ExportCallback` what ``gluonres train`` does at the end of a run.
"""
import contextlib
import ctypes
import errno
import fcntl
import fnmatch
import json
import os
import shutil
import sys
import tempfile

import mxnet as mx
import numpy as np
from mxnet.gluon.parameter import DeferredInitializationError

from gluonres import io, pretrained
from gluonres._untrusted import printable
from gluonres._files import check_writable, sha256_of
from gluonres.data.images import COLOR_OF
from gluonres.data.sources import CIFAR10_CLASSES, resolve_root
from gluonres.deploy import runtime
from gluonres.deploy.quantize import (CALIB_IMAGES, CALIB_MODE, CALIB_SEED, calibration_images,
                                      quantize)
from gluonres.errors import GluonresError
from gluonres.machine import utc_now
from gluonres.models import model_info
from gluonres.models.init import he_initialize
from gluonres.train.loop import Callback


# how predict turns an image file into each colour (the manifest's "conversion")
_CONVERSIONS = {"RGB": "grayscale replicated to 3 channels, alpha dropped",
                "L": "RGB converted to grey (0.299 R + 0.587 G + 0.114 B, OpenCV's), alpha "
                     "dropped"}


def image_spec(size, shorter_side=None, channels=3):
    """How an image file becomes a ``size`` x ``size`` array (the manifest's ``image``).

    The runtime converts it to the colour (``"RGB"``, or ``"L"`` for 1 channel), resizes
    its shorter side to ``shorter_side`` and crops the centre
    (:func:`gluonres.data.images.fit_pixels`: what training and ``evaluate`` do). Without
    a recorded ``shorter_side``, models of up to 32 pixels take images of exactly their
    size (shrinking a photo to 32x32 silently would give confident nonsense) and larger
    ones resize the shorter side to the input size, as gluonres training does.
    """
    if shorter_side is None and size > 32:
        shorter_side = size
    color = COLOR_OF[channels]
    resize = {"shorter_side": int(shorter_side), "center_crop": True} if shorter_side else None
    return {"color": color, "size": [size, size], "resize": resize,
            "conversion": _CONVERSIONS[color]}


def default_classes(net, meta=None):
    """Class names: from weights metadata, else CIFAR-10's for 10-class CIFAR models,
    else the indices as strings."""
    info = model_info(net)
    n = info.classes
    names = (meta or {}).get("classes")
    if names and (n is None or len(names) == n):
        return list(names)
    if n == 10 and info.input_size == 32:
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(n or 0)]


def _preprocess_spec(preprocess, mean_file):
    if preprocess is None:
        return None
    spec = {"formula": "x = (pixels * scale - mean) / std, per channel, then HWC -> NCHW",
            "scale": 1 / 255, "mean": None, "mean_image": None,
            "std": list(preprocess.std) if preprocess.std is not None else None}
    if preprocess.mean_image is not None:  # replaces the per-channel mean
        spec["mean_image"] = mean_file
    elif preprocess.mean is not None:
        spec["mean"] = list(preprocess.mean)
    return spec


def _trace(net, input_shape):
    try:
        next(iter(net.collect_params().values())).data()
    except DeferredInitializationError:
        pass  # initialised; the forward pass below infers the deferred shapes
    except RuntimeError:
        raise GluonresError("the network has no weights yet; call net.initialize() or load "
                            "weights before exporting") from None
    if not net._active:  # export needs the cached graph of a hybridized forward pass
        net.hybridize()
    return net(mx.nd.zeros(input_shape))


def export(net, out_dir, name=None, input_shape=None, preprocess=None, classes=None,
           onnx=False, calibration=None, source=None, shorter_side=None):
    """Hybridize, trace and export ``net`` with its manifest, all-or-nothing.

    The caller need not hybridize or run a forward pass first: both happen here.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        An initialised network.
    out_dir : str
        The export folder: created if missing; an earlier export there is replaced as a
        whole, in one step, only on success (:func:`replace_folder`). A folder holding
        other files is refused (:func:`check_export_folder`).
    name : str, optional
        File prefix; defaults to the model's name (:func:`~gluonres.models.model_info`).
    input_shape : tuple, optional
        Trace shape ``(N, C, H, W)``; defaults to batch 1 at the model's input size and
        channels (:func:`~gluonres.models.model_info`). The graphs run at any batch size;
        the manifest records this one.
    preprocess : gluonres.preprocess.Preprocess, optional
        Written into the manifest (not into the graph). ``None`` records no
        preprocessing, and ``gluonres predict`` refuses the export.
    classes : list of str, optional
        Defaults to :func:`default_classes`.
    onnx : bool, default False
        Also write ``NAME.onnx`` (needs the ``onnx`` package).
    calibration : gluonres.quantize.Calibration, optional
        Also write the oneDNN INT8 graph, calibrated on these images (needs
        ``preprocess``).
    source : dict, optional
        Provenance recorded in the manifest (weights path and sha256 ...).
    shorter_side : int, optional
        The resize ``predict`` applies before the centre crop, as the weights were trained
        (:func:`image_spec`).

    Returns
    -------
    dict
        Paths written: ``symbol``, ``params``, ``manifest`` and, when asked, ``onnx``,
        ``int8_symbol``, ``int8_params``, ``mean_image``.
    """
    name = name or model_info(net).name
    input_shape = tuple(input_shape or model_info(net).input_shape())
    if input_shape[0] < 1:
        raise GluonresError(f"the batch size must be at least 1, got {input_shape[0]} "
                            "(--batch)")
    if calibration is not None and preprocess is None:
        raise GluonresError("INT8 calibration needs the input normalisation; export trained "
                            "weights that record it, or pass --mean and --std")
    real_out = check_export_folder(out_dir)
    output = _trace(net, input_shape)
    os.makedirs(os.path.dirname(real_out), exist_ok=True)
    with staging_folder(real_out) as staging:
        files = _write_all(net, staging, name, input_shape, preprocess, onnx, calibration)
        manifest = {
            "format": runtime.FORMAT,
            "model": model_info(net).name,
            "input": {"name": "data", "shape": list(input_shape), "layout": "NCHW",
                      "dtype": "float32"},
            "output": {"shape": list(output.shape), "kind": "logits",
                       "note": "no softmax in the graph; apply it for probabilities"},
            "image": image_spec(input_shape[2], shorter_side, input_shape[1]),
            "preprocess": _preprocess_spec(preprocess, files.get("mean_image")),
            "classes": list(classes) if classes is not None else default_classes(net),
            "files": files,
            "sha256": {f: sha256_of(os.path.join(staging, f))
                       for f in files.values()},
            "versions": _versions(onnx),
            "created": utc_now(),
        }
        if calibration is not None:
            manifest["int8"] = {"backend": "oneDNN (MKLDNN) via mxnet.contrib.quantization",
                                "calibration": calibration.describe()}
        if source:
            manifest["source"] = source
        with open(os.path.join(staging, runtime.MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2)
        for fname in [*files.values(), runtime.MANIFEST]:
            with open(os.path.join(staging, fname), "rb") as f:
                os.fsync(f.fileno())
        replace_folder(staging, real_out)
    return {key: os.path.join(out_dir, fname)
            for key, fname in [*files.items(), ("manifest", runtime.MANIFEST)]}


# ---------------------------------------------------------------------- the export folder
#: What an export folder may hold besides its manifest: the files an export writes, and
#: the staging folders (``.export.*``) that earlier versions kept inside it.
EXPORT_FILES = ("*-symbol.json", "*-0000.params", "*.onnx", "mean.npy", ".export.*")


def check_export_folder(out_dir):
    """Check, before any work, that an export can be written to ``out_dir``.

    Parameters
    ----------
    out_dir : str
        The export folder: missing, empty, or an earlier export (which is replaced as a
        whole, so a folder holding other files is refused rather than deleted).

    Returns
    -------
    str
        ``out_dir`` as an absolute path, symbolic links resolved.

    Raises
    ------
    GluonresError
        If ``out_dir`` is a file, holds other files, or it (or the folder around it,
        where the new export is staged) cannot be written to.
    """
    path = os.path.realpath(out_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise GluonresError(f"--out {out_dir!r} is a file; pass a folder")
    if os.path.isdir(path):
        others = sorted(entry for entry in os.listdir(path) if entry != runtime.MANIFEST
                        and not any(fnmatch.fnmatchcase(entry, p) for p in EXPORT_FILES))
        if others:
            shown = ", ".join(printable(o) for o in others[:3])
            raise GluonresError(
                f"--out {out_dir!r} holds files that are not part of an export ({shown}"
                f"{' ...' if len(others) > 3 else ''}); an export replaces its whole folder, "
                "so pass a new folder or an earlier export's")
        check_writable(out_dir)
        check_writable(os.path.dirname(path), "the folder around --out")  # staged there
    else:
        check_writable(out_dir)
    return path


def _staging_prefix(out_dir):
    return f".{os.path.basename(out_dir)}.export-"


@contextlib.contextmanager
def staging_folder(out_dir):
    """A new, locked folder beside ``out_dir`` to write an export into; removed at the end.

    The lock (``flock`` on the folder) is what tells a live export from one whose process
    was killed: :func:`remove_stale_staging` removes only unlocked ones, and runs here
    once the new folder is locked.
    """
    parent = os.path.dirname(out_dir)
    while True:
        path = tempfile.mkdtemp(prefix=_staging_prefix(out_dir), dir=parent)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a cleaner may have removed it between mkdtemp and flock: then take another
            if os.path.samestat(os.stat(path), os.fstat(fd)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        umask = os.umask(0)  # an export is meant to be read by others: not mkdtemp's 0700
        os.umask(umask)
        old = os.stat(out_dir).st_mode & 0o7777 if os.path.isdir(out_dir) else None
        os.chmod(path, old if old is not None else 0o777 & ~umask)
        remove_stale_staging(out_dir)
        yield path
    finally:
        # after a swap this path holds the earlier export; after a failure, the partial one
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_stale_staging(out_dir):
    """Remove the staging folders of exports into ``out_dir`` whose process has died.

    A staging folder in use is locked by its process (:func:`staging_folder`); a killed
    process's lock is gone, so its folder is removed. Exports into other folders are
    not touched.

    Returns
    -------
    list of str
        The folders removed.
    """
    parent, prefix, removed = os.path.dirname(os.path.abspath(out_dir)), \
        _staging_prefix(os.path.abspath(out_dir)), []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # locked: a live export is writing it
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        finally:
            os.close(fd)
    return removed


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def exchange(a, b):
    """Swap the paths ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises
    ------
    OSError
        ``ENOSYS`` or ``EINVAL`` where the system or file system cannot do it.
    """
    func = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if func is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", a)
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), a)


def replace_folder(new, path):
    """Put the complete folder ``new`` at ``path``, replacing what is there in one step.

    A missing ``path`` is created by one rename; an existing one is swapped with ``new``
    by :func:`exchange`, so ``new`` then holds the earlier folder (for the caller to
    remove) and ``path`` never holds a mix or nothing. Where the exchange is not
    available, the earlier folder is renamed aside first (a moment without ``path``;
    still never a mix) and put back if the second rename fails.

    Raises
    ------
    GluonresError
        If the folder cannot be replaced (with the system's reason).
    """
    parent = os.path.dirname(path)
    try:
        if not os.path.lexists(path):
            os.rename(new, path)
        else:
            try:
                exchange(new, path)
            except OSError as err:
                if err.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
                    raise
                aside = new + "-earlier"  # a staging name: removed later if left behind
                os.rename(path, aside)
                try:
                    os.rename(new, path)
                except OSError:
                    os.rename(aside, path)
                    raise
                os.rename(aside, new)
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)  # the renames themselves survive a power cut
        finally:
            os.close(fd)
    except OSError as err:
        raise GluonresError(f"cannot replace {path!r} with the new export "
                            f"({err.strerror or err}); export into a new folder") from None


def _write_all(net, staging, name, input_shape, preprocess, onnx, calibration):
    """Write every file into ``staging``; returns ``{role: file name}``."""
    prefix = os.path.join(staging, name)
    net.export(prefix, epoch=0)
    files = {"symbol": f"{name}-symbol.json", "params": f"{name}-0000.params"}
    _canonical_symbol(os.path.join(staging, files["symbol"]))
    if preprocess is not None and preprocess.mean_image is not None:
        files["mean_image"] = "mean.npy"
        np.save(os.path.join(staging, files["mean_image"]),
                np.asarray(preprocess.mean_image, np.float32), allow_pickle=False)
    if onnx:
        files["onnx"] = f"{name}.onnx"
        export_onnx(prefix + "-symbol.json", prefix + "-0000.params",
                    os.path.join(staging, files["onnx"]), input_shape)
    if calibration is not None:
        sym, args, auxs = mx.model.load_checkpoint(prefix, 0)
        calib = preprocess(mx.nd.array(calibration.images, dtype="uint8"))
        qsym, qargs, qauxs = quantize(sym, args, auxs, calib, calibration)
        files["int8_symbol"] = f"{name}-int8-symbol.json"
        files["int8_params"] = f"{name}-int8-0000.params"
        qsym.save(os.path.join(staging, files["int8_symbol"]))
        mx.nd.save(os.path.join(staging, files["int8_params"]),
                   {**{f"arg:{k}": v for k, v in qargs.items()},
                    **{f"aux:{k}": v for k, v in qauxs.items()}})
    return files


def _canonical_symbol(path):
    """Set every input's version in a symbol file to 0.

    mxnet records how often a variable was mutated (BatchNorm's running statistics: once
    by a traced forward pass, twice after training), which the graph does not depend on;
    without this, the export of a run and ``gluonres export`` of its weights would differ.
    """
    with open(path) as f:
        graph = json.load(f)
    for node in graph["nodes"]:
        node["inputs"] = [[entry[0], entry[1], 0] for entry in node["inputs"]]
    graph["heads"] = [[entry[0], entry[1], 0] for entry in graph["heads"]]
    with open(path, "w") as f:
        json.dump(graph, f, indent=2)


def export_onnx(symbol_file, params_file, onnx_file, input_shape):
    """Convert an exported graph to ONNX with a dynamic batch dimension.

    ``mx.onnx`` lists every weight as a graph input as well as an initializer, which
    makes onnxruntime warn ("initializer appears in graph inputs") and skip constant
    folding; those inputs are removed, leaving ``data`` as the only input.

    Raises
    ------
    GluonresError
        If the ``onnx`` package is not installed.
    """
    try:
        import onnx
    except ImportError:
        raise GluonresError("--onnx needs the onnx package; pip install 'onnx==1.15.0' "
                            "(mx.onnx needs onnx < 1.16)") from None
    mx.onnx.export_model(symbol_file, params_file, [tuple(input_shape)], [np.float32],
                         onnx_file, dynamic=True,
                         dynamic_input_shapes=[(None, *input_shape[1:])])
    model = onnx.load(onnx_file)
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, onnx_file)


def _versions(onnx):
    from gluonres import __version__
    versions = {"gluonres": __version__, "mxnet": mx.__version__, "numpy": np.__version__}
    if onnx:
        import onnx as onnx_module
        versions["onnx"] = onnx_module.__version__
    return versions


# ---------------------------------------------------------------------------- from weights
def weights_export_settings(net, weights, meta, mean=None, std=None, size=None):
    """What :func:`export` records for ``net`` loaded from the file ``weights``.

    ``size`` is the input size exported (default the network's,
    :func:`~gluonres.models.model_info`).

    Returns
    -------
    dict
        ``preprocess`` (:func:`gluonres.io.weights_preprocess`), ``classes``
        (:func:`default_classes`), ``shorter_side`` (:func:`gluonres.io.weights_resize`)
        and ``source`` (the weights' path and SHA-256): keyword arguments of
        :func:`export`.
    """
    info = model_info(net)
    return {"preprocess": io.weights_preprocess(meta, weights, mean, std,
                                                channels=info.in_channels),
            "classes": default_classes(net, meta),
            "shorter_side": io.weights_resize(meta, size or info.input_size, weights),
            "source": {"weights": os.path.abspath(weights), "weights_sha256": sha256_of(weights)}}


def load_for_export(model, weights=None, mean=None, std=None, seed=0, size=None, **model_kwargs):
    """A registered model with ``weights`` loaded (or He-initialised), ready to export.

    Parameters
    ----------
    model : str
        Registered name.
    weights : str, optional
        A gluonres ``.params`` file, an exported ``NAME-0000.params``, a reference
        ``.npz`` or ``'pretrained'`` (the weights shipped for ``model``); without it the
        weights are fresh (seeded He initialisation) and the export records no
        preprocessing unless ``mean`` and ``std`` are given.
    mean, std : sequence of float, optional
        Override the normalisation the weights record, one value per input channel
        (:func:`gluonres.io.weights_preprocess`).
    seed : int, default 0
        Of the fresh weights.
    size : int, optional
        Input size (:func:`gluonres.io.sized_model`); default the one the weights record,
        else the model's.
    **model_kwargs
        Builder options: ``classes``, ``in_channels``, ``shortcut`` ...

    Returns
    -------
    net : mxnet.gluon.HybridBlock
    settings : dict
        ``preprocess``, ``classes``, ``shorter_side`` and ``source`` for :func:`export`.
    """
    if weights:  # the classes, size and channels from the weights' metadata, as evaluate
        weights = pretrained.resolve(weights, model)
        net, meta = io.model_for_weights(model, weights, size=size, **model_kwargs)
        return net, weights_export_settings(net, weights, meta, mean, std)
    net = io.sized_model(model, size, **model_kwargs)
    _log(f"no --weights given: exporting {model} with fresh He-initialised weights "
         f"(seed {seed}); the manifest records no preprocessing")
    he_initialize(net, seed)
    return net, {"preprocess": io.weights_preprocess({}, None, mean, std, required=False,
                                                     channels=model_info(net).in_channels),
                 "classes": default_classes(net),
                 "source": {"weights": None, "init": f"He (MSRA, fan-in) normal, seed {seed}"}}


def export_weights(model, out_dir, weights=None, batch=1, mean=None, std=None, seed=0,
                   onnx=False, calib_data=None, calib_images=CALIB_IMAGES,
                   calib_seed=CALIB_SEED, calib_mode=CALIB_MODE, size=None, **model_kwargs):
    """Export a registered model with its weights: what ``gluonres export`` does.

    Parameters
    ----------
    model : str
        Registered name.
    out_dir : str
        Export folder (see :func:`export`).
    weights, mean, std, seed, size, **model_kwargs
        As for :func:`load_for_export`.
    batch : int, default 1
        Batch size of the traced graph, at the network's input size.
    onnx : bool, default False
        Also write ``NAME.onnx``.
    calib_data : str, optional
        Image folder (or ``.tar.gz``) whose ``train/`` split calibrates an INT8 graph,
        also written; checked before anything else is done.
    calib_images, calib_seed, calib_mode
        How many calibration images, the seed of their random pick and the calibration
        mode (:func:`gluonres.deploy.quantize.calibration_images`).

    Returns
    -------
    dict
        The paths :func:`export` wrote.
    """
    if batch < 1:
        raise GluonresError(f"--batch {batch}: the batch size of the traced graph must be at "
                            "least 1; pass --batch 1 or more")
    check_export_folder(out_dir)  # these fail before any work
    calib_root = resolve_root(calib_data) if calib_data else None
    net, settings = load_for_export(model, weights, mean, std, seed, size, **model_kwargs)
    info = model_info(net)
    calibration = None
    if calib_root:
        _log(f"picking {calib_images} calibration images from {calib_root} "
             f"(seed {calib_seed})")
        spec = image_spec(info.input_size, settings.get("shorter_side"), info.in_channels)
        calibration = calibration_images(calib_root, calib_images, calib_seed, spec,
                                         calib_mode)
    return export(net, out_dir, model, info.input_shape(batch), onnx=onnx,
                  calibration=calibration, **settings)


class ExportCallback(Callback):
    """Export a run's chosen weights to ``OUT/export`` at the end of
    :func:`~gluonres.train.fit`.

    The export is what ``gluonres export MODEL --weights OUT/weights.params --out
    OUT/export`` writes: the graph at the size and channels the run trained on and batch
    1, with the run's preprocessing, resize and class names and the weights' SHA-256.
    Its ``symbol`` and ``params`` paths are added to the run's files (and log) as
    ``export_symbol`` and ``export_params``. A run without an output folder, and a
    worker other than rank 0, export nothing.
    """

    def on_train_end(self, state, history):
        """Export the weights :func:`~gluonres.train.fit` has just written."""
        weights = history["files"].get("weights")
        if weights is None:  # this process wrote no run folder
            return
        meta = io.read_weights(weights)[1]
        info = model_info(state.net)
        # the size the run trained at, which a network fit() was given need not report
        size = meta.get("input_size", info.input_size)
        paths = export(state.net, os.path.join(state.out_dir, "export"),
                       input_shape=(1, info.in_channels, size, size),
                       **weights_export_settings(state.net, weights, meta, size=size))
        history["files"].update(export_symbol=paths["symbol"], export_params=paths["params"])


def _log(message):
    print(message, file=sys.stderr, flush=True)
