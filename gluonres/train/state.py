"""A run's resumable state: optimizer momentum without pickles, the checkpoint's metadata,
and the checks that a checkpoint belongs to the run being resumed.
"""
import os

import mxnet as mx

from gluonres import io
from gluonres.errors import GluonresError, WeightsMismatchError
from gluonres.models import model_info
from gluonres.train import checkpoints


CHECKPOINT = checkpoints.LATEST


CHECKPOINT_FORMAT = checkpoints.FORMAT


_RUNTIME_FIELDS = ("kvstore",)  # may change when a run is resumed


_CARRIED = ("epochs", "started", "train_s", "wall_s", "info", "machine", "resumed")


# ---------------------------------------------------------------------------- checkpoints
def optimizer_states(trainer):
    """The optimizer's per-parameter state (momentum) as ``{'opt:NAME[:i]': NDArray}``.

    Read from the trainer's local updater, never through ``Trainer.save_states``, which
    pickles.
    """
    updater = trainer._updaters[0]
    out = {}
    for name, idx in trainer._param2idx.items():
        for key, arr in _flatten_state(updater.states.get(idx), io.OPTIMIZER_PREFIX + name):
            out[key] = arr.copyto(mx.cpu())
    return out


def load_optimizer_states(trainer, arrays, source):
    """Inverse of :func:`optimizer_states` on a trainer whose parameters are initialised."""
    updater = trainer._updaters[0]
    optimizer = trainer._optimizer
    for name, idx in trainer._param2idx.items():
        param = trainer._params[idx]
        if param.grad_req == "null":  # never updated (BatchNorm running statistics)
            continue
        state = optimizer.create_state_multi_precision(idx, param.data())
        for key, arr in _flatten_state(state, io.OPTIMIZER_PREFIX + name):
            if key not in arrays:
                raise io.CorruptFileError(f"{source} has no optimizer state {key!r}; it is not "
                                          "a complete checkpoint of this run")
            arr[:] = arrays[key]
        updater.states[idx] = state
        updater.states_synced[idx] = True


def _flatten_state(state, key):
    if isinstance(state, mx.nd.NDArray):
        yield key, state
    elif isinstance(state, (tuple, list)):
        for i, part in enumerate(state):
            yield from _flatten_state(part, f"{key}:{i}")


def checkpoint_meta(out_dir):
    """The JSON metadata of ``out_dir``'s newest good checkpoint (config, data, progress).

    Raises
    ------
    GluonresError
        If there is no checkpoint, or none passes its SHA-256 and format checks.
    """
    return checkpoints.CheckpointStore(out_dir).load().meta


def check_new_run(out_dir):
    """Refuse to start a run in a folder that holds one (its checkpoints would be lost).

    Raises
    ------
    GluonresError
        Naming the folder and the two ways on: ``--resume`` or another folder.
    """
    if checkpoints.CheckpointStore(out_dir).exists():
        raise GluonresError(f"{out_dir!r} already holds a run ({CHECKPOINT}); continue it with "
                            "--resume or choose another output folder")


def check_checkpoint_model(meta, model, path):
    """Refuse a checkpoint of another model, naming both."""
    if meta.get("model") != model:
        raise WeightsMismatchError(
            f"{path!r} is a checkpoint of {meta.get('model')}, not {model}; resume it as "
            f"{meta.get('model')} or train {model} in another output folder")


def _check_resumable(meta, net, arrays, config, data_info, path):
    """Refuse a checkpoint of another model, other settings or other data, naming it."""
    check_checkpoint_model(meta, model_info(net).name, path)
    if meta["state"].get("optimizer_on_servers"):
        raise GluonresError(f"{path!r} was written by a dist_async run, whose momentum lived "
                            "on the parameter servers and is not in the checkpoint; it cannot "
                            "be resumed exactly: start a new run (dist_sync runs resume)")
    io.check_compatible(net, io.weights_only(arrays), meta, source=repr(path))
    saved = meta["config"]
    for key, value in config.to_dict().items():
        if key not in _RUNTIME_FIELDS and saved.get(key) != value:
            raise GluonresError(f"{path!r} was trained with {key}={saved.get(key)!r}, not "
                                f"{value!r}; resume with the same settings or start a new "
                                "output folder")
    for key in ("splits", "classes"):
        if meta["data"].get(key) != data_info.get(key):
            raise GluonresError(f"{path!r} was trained on data with {key} "
                                f"{meta['data'].get(key)}, not {data_info.get(key)}; resume "
                                "with the same data (and validation split)")


def _resumed_best(best, epoch, arrays, weights, out_dir):
    """The best epoch's weights of a resumed run (``None`` without a validation split)."""
    if best["epoch"] is None:
        return None
    if best["epoch"] == epoch:
        return {n: v.copy() for n, v in weights.items()}
    kept = {k[len(io.BEST_PREFIX):]: v for k, v in arrays.items()
            if k.startswith(io.BEST_PREFIX)}
    # checkpoints written before the best weights travelled in them
    return kept or io.read_weights(os.path.join(out_dir, "best.params"))[0]


def _save_checkpoint(store, net, trainer, schedule, weights_meta, config, data_info, state,
                     best, best_arrays, history, workers):
    arrays = {n: p.data().copyto(mx.cpu()) for n, p in net.collect_params().items()}
    arrays.update(optimizer_states(trainer))
    if best["epoch"] not in (None, state.epoch):  # else the weights are the best ones
        arrays.update({io.BEST_PREFIX + n: v.copyto(mx.cpu()) for n, v in best_arrays.items()})
    meta = {**weights_meta, "format": CHECKPOINT_FORMAT, "config": config.to_dict(),
            "data": data_info,
            "state": {"epoch": state.epoch, "iteration": state.iteration,
                      "schedule": schedule.state_dict(), "best": best, "seed": config.seed,
                      "optimizer_on_servers": not workers.synchronous},
            "history": {k: history[k] for k in _CARRIED}}
    store.save(arrays, meta)
