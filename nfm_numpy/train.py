"""Training: shuffled mini-batches, per-epoch validation and test metrics, early
stopping with the best-validation weights restored, FM pretraining, NaN guard.

``fit(model, split, ...)`` follows the original code's loop: each epoch
reshuffles the training rows and runs N // B steps (the last partial batch is
dropped, as ``int(N / B)`` there), then evaluates the validation and test sets
in evaluation mode (BN running averages, no dropout). The reported test metric
is the one at the best validation epoch, as in the paper.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import backend as B
from . import metrics as M
from . import optim
from .data import Batch


@dataclass
class History:
    """Per-epoch records and the outcome of a run."""

    metric: str                               # rmse or logloss (lower is better)
    epochs: list = field(default_factory=list)   # dicts: epoch, train, valid, test, seconds, ...
    best_epoch: int = 0
    stopped: str = ""                         # why training ended

    @property
    def best(self):
        return self.epochs[self.best_epoch - 1] if self.best_epoch else None

    def column(self, key):
        return [e[key] for e in self.epochs]


def should_stop(valid, patience=4):
    """The original's eva_termination: the validation metric (lower is better) rose
    ``patience`` epochs in a row, checked once more than ``patience + 1`` epochs ran."""
    if len(valid) <= patience + 1:
        return False
    return all(valid[-i] > valid[-i - 1] for i in range(1, patience + 1))


def evaluate(model, data, chunk=16384):
    """Metrics of ``model`` on a ``Dataset`` (evaluation mode). One host copy of the predictions."""
    pred = B.to_numpy(model.predict(data.batch(), chunk))
    y = B.to_numpy(data.y)
    loss = model.config["loss"]
    label_range = (float(y.min()), float(y.max())) if loss == "square" else None
    return M.evaluate(loss, y, pred, label_range)


def _copy(d):
    """A copy of a dict of arrays (a snapshot of the weights), on their own backend."""
    def copy(a):
        xp = B.get_xp(a)
        return a.copy() if (B.is_numpy(xp) or B.is_cupy(xp)) else xp.asarray(a, copy=True)
    return {n: copy(a) for n, a in d.items()}


class NonFiniteLoss(RuntimeError):
    pass


def fit(model, split, optimizer="adagrad", lr=0.05, batch_size=128, epochs=200, early_stop=True, patience=4,
        seed=None, progress=None, log=print, history_path=None, eval_train=False):
    """Train ``model`` on ``split.train``; validate and test every epoch.

    Parameters
    ----------
    model : NFM or FM (its backend decides where training runs)
    split : datasets.Split (train, valid, test); host arrays, moved once here
    optimizer : name ('adagrad', 'adam', 'sgd', 'momentum') or an ``optim.Optimizer``
    early_stop : stop when the validation metric rose ``patience`` epochs in a row
    seed : shuffling seed (default: the model's seed)
    progress : a progress bar per epoch (default: when stderr is a terminal)
    log : where the per-epoch lines go (``None``: silent)
    history_path : write one JSON line per epoch there
    eval_train : also evaluate the whole training set in evaluation mode each
        epoch (the original does; costs time). Otherwise the train column is
        the running training-mode metric of the epoch's batches (with dropout).

    Returns a ``History``; the model ends with the best-validation weights.
    """
    xp, dev = model.xp, model.device
    dtype = np.dtype(model.config["dtype"])
    train, valid, test = (d.to(xp, dev, dtype) for d in split)
    opt = optim.make(optimizer, lr) if isinstance(optimizer, str) else optimizer
    loss_name = model.config["loss"]
    hist = History("rmse" if loss_name == "square" else "logloss")
    rng = np.random.default_rng(model.config["seed"] + 2 if seed is None else seed)
    N, Bsz = len(train), int(batch_size)
    steps = N // Bsz
    if steps == 0:
        raise ValueError(f"batch size {Bsz} is larger than the training set ({N} rows)")
    if progress is None:
        progress = sys.stderr.isatty()
    best = (math.inf, _copy(model.params), _copy(model.state))
    history_file = open(history_path, "w") if history_path else None
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            # shuffle once per epoch (three gathers of the whole set), then take contiguous slices:
            # cheaper than three small gathers per step
            perm = B.to_device(rng.permutation(N)[: steps * Bsz], xp, dev)      # (steps * B,)
            shuffled = train.batch(perm)
            total = 0.0
            for step in _bar(range(steps), progress, f"epoch {epoch}"):
                i = step * Bsz
                batch = Batch(shuffled.idx[i:i + Bsz, ...], shuffled.val[i:i + Bsz, ...],
                              shuffled.y[i:i + Bsz, ...], True)
                try:
                    loss, grads = model.loss(batch)
                except FloatingPointError as e:         # where the user made NumPy raise on overflow
                    raise NonFiniteLoss(f"{e} at epoch {epoch}, batch {step + 1} of {steps}") from e
                loss = float(loss)                      # one scalar to the host a step
                if not math.isfinite(loss):
                    raise NonFiniteLoss(f"the loss is {loss} at epoch {epoch}, batch {step + 1} of {steps}")
                opt.step(model.params, grads)
                total += loss
            seconds = time.perf_counter() - t0
            rec = {"epoch": epoch, "seconds": round(seconds, 4)}
            if eval_train:
                rec["train"] = evaluate(model, train)[hist.metric]
            else:
                rec["train"] = math.sqrt(2 * total / (steps * Bsz)) if loss_name == "square" else total / steps
            v, t = evaluate(model, valid), evaluate(model, test)
            rec.update(valid=v[hist.metric], test=t[hist.metric], valid_auc=v["auc"], test_auc=t["auc"])
            hist.epochs.append(rec)
            if rec["valid"] < best[0]:
                best = (rec["valid"], _copy(model.params), _copy(model.state))
                hist.best_epoch = epoch
            if log:
                log(f"epoch {epoch:3d}  train {rec['train']:.4f}  valid {rec['valid']:.4f}  "
                    f"test {rec['test']:.4f}  [{seconds:.2f} s]" + ("  *" if hist.best_epoch == epoch else ""))
            if history_file:
                history_file.write(json.dumps(rec) + "\n")
                history_file.flush()
            if early_stop and should_stop(hist.column("valid"), patience):
                hist.stopped = f"early stop: validation {hist.metric} rose {patience} epochs in a row"
                break
        else:
            hist.stopped = f"reached {epochs} epochs"
    except NonFiniteLoss as e:
        hist.stopped = f"{e}; training stopped"
        if log:
            log(f"{hist.stopped}; weights restored to epoch {hist.best_epoch} "
                f"({'the best validation epoch' if hist.best_epoch else 'the initial weights'})")
    finally:
        if history_file:
            history_file.close()
    model.params, model.state = best[1], best[2]
    return hist


def _bar(it, enabled, desc):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, leave=False, mininterval=0.5)


def pretrain_fm(nfm, split, keep_prob=None, log=print, **fit_kw):
    """The paper's FM pretraining: train an FM of the same size, then start the NFM's
    w0, w and V from it. Returns the FM's History."""
    from .model import FM
    c = nfm.config
    fm = FM(c["n_features"], c["k"], keep_prob=keep_prob or c["keep_prob"][-1], batch_norm=False,
            loss=c["loss"], l2=c["l2"], dtype=c["dtype"], seed=c["seed"], backend=nfm.xp, device=nfm.device,
            impl=c["impl"], init_std=c["init_std"])
    if log:
        log("pretraining FM (w0, w and V start NFM):")
    hist = fit(fm, split, log=log, **fit_kw)
    for name in ("w0", "w", "V"):
        nfm.params[name] = fm.params[name]
    return hist
