"""Training: shuffled mini-batches, per-epoch validation and test metrics, early
stopping with the best-validation weights restored, FM pretraining, and a run
that ends cleanly whatever happens (divergence, Ctrl-C, SIGTERM).

``fit(model, split, ...)`` follows the original code's loop: each epoch
reshuffles the training rows and runs N // B steps (the last partial batch is
dropped, as ``int(N / B)`` there), then evaluates the validation and test sets
in evaluation mode (BN running averages, no dropout). The reported test metric
is the one at the best validation epoch, as in the paper.

How a run ends is in ``History.outcome``: ``"max_epochs"``, ``"early_stop"``,
``"diverged"`` (a non-finite loss or metric; the model keeps the weights of
the best epoch, or its initial weights if none finished) or ``"interrupted"``.

Signals (SIGINT, i.e. Ctrl-C or a Jupyter kernel interrupt; SIGTERM, sent by
``timeout``, batch schedulers and Kubernetes; SIGHUP, a closed terminal or a
dropped ssh session; SIGQUIT): the current step finishes, the model gets the
best weights so far and the history is written, and then, by default, the
signal goes on to whoever was there before ``fit``: the previous handlers are
restored and the signal is raised again, so a script stops as it would have
without us (SIGINT: ``KeyboardInterrupt``; SIGTERM: the process ends, unless
the caller handles it). A library call never swallows a signal. The command
line passes ``on_interrupt="return"`` to get the ``History`` back instead: it
saves the best weights and exits 130. A second signal stops at once with
``errors.Interrupted``. A signal that was ignored when ``fit`` started (e.g.
SIGINT in a background job, SIGHUP under ``nohup``) stays ignored.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from . import backend as B, errors as E, metrics as M, optim
from .data import Dataset, binary_labels, fit_dtype
from .ondisk import DiskDataset
from .outputs import check_output, write_atomically
from .threads import blas_threads, check as check_threads


@dataclass
class History:
    """Per-epoch records and the outcome of a run."""

    metric: str                               # rmse or logloss (lower is better)
    epochs: list = field(default_factory=list)   # dicts: epoch, train, valid, test, seconds, ...
    best_epoch: int = 0                       # 0: no epoch finished (the model has its initial weights)
    stopped: str = ""                         # why training ended, in words
    outcome: str = ""                         # max_epochs, early_stop, diverged or interrupted

    @property
    def best(self):
        return self.epochs[self.best_epoch - 1] if self.best_epoch else None

    @property
    def interrupted(self):
        return self.outcome == "interrupted"

    @property
    def diverged(self):
        return self.outcome == "diverged"

    def column(self, key):
        return [e[key] for e in self.epochs]


def should_stop(valid, patience=4):
    """The original's eva_termination: the validation metric (lower is better) rose
    ``patience`` epochs in a row, checked once more than ``patience + 1`` epochs ran."""
    if len(valid) <= patience + 1:
        return False
    return all(valid[-i] > valid[-i - 1] for i in range(1, patience + 1))


def evaluate(model, data, chunk=16384):
    """Metrics of ``model`` on a ``Dataset`` (evaluation mode). One host copy of the predictions.

    RMSE is computed after clipping predictions to ``model.label_range``, the range of the
    labels it was trained on (set by ``fit``, kept in checkpoints), as the original clips to
    the label range; a model without one is not clipped. (Clipping to the range of the
    labels being scored would give RMSE 0 to any file whose labels are all equal.)
    """
    pred = predictions(model, data, chunk)
    y = B.to_numpy(data.y)
    loss = model.config["loss"]
    return M.evaluate(loss, y, pred, model.label_range if loss == "square" else None)


def predictions(model, data, chunk=16384, scores=False):
    """Host predictions of ``model`` for every row of the Dataset ``data``: yhat for the square
    loss, probabilities for the log loss, or with ``scores`` the raw outputs (logits).

    ``data`` may be on the host while the model is on a device: it is moved first. A Dataset was
    validated when it was built, so only its id range is checked against the model here, not
    every value again (``fit`` scores its validation and test sets this way every epoch).
    """
    n = model.config["n_features"]
    if data.n_features > n:
        raise E.DataError(f"{data.name}: its ids span {data.n_features} features, the model has {n}")
    if isinstance(data, DiskDataset):           # a piece at a time
        return np.concatenate([predictions(model, piece, chunk, scores) for piece in data.pieces()])
    # float64 rows for a float32 model: check the values fit. finfo of the rows' own namespace: rows already
    # on a device have that library's dtype, not NumPy's
    if B.get_xp(data.val).finfo(data.val.dtype).bits > np.finfo(model.config["dtype"]).bits:
        fit_dtype(np.dtype(model.config["dtype"]), data.name, val=data.val)
    if B.get_xp(data.idx) is not model.xp:
        data = data.to(model.xp, model.device)
    with blas_threads():                    # see nfm_numpy.threads: one thread beats two on a busy machine
        s = model._scores(data.idx, B.astype(data.val, model.dtype), chunk)
    return B.to_numpy(s if scores else model._link(s))


def _copy(d):
    """A copy of a dict of arrays (a snapshot of the weights), on their own backend."""
    def copy(a):
        xp = B.get_xp(a)
        return a.copy() if (B.is_numpy(xp) or B.is_cupy(xp)) else xp.asarray(a, copy=True)
    return {n: copy(a) for n, a in d.items()}


def stop_signals():
    """The signals that stop a run: SIGINT, SIGTERM, and where the system has them SIGHUP and SIGQUIT."""
    return [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, n)]


class _StopOnSignal:
    """While a run trains, the stop signals ask it to stop after the current step (``requested``
    names the signal, ``signum`` is its number); a second signal raises ``errors.Interrupted`` at
    once. A signal ignored when the run starts stays ignored. Only the main thread can set signal
    handlers; elsewhere this does nothing. ``resend()``, after ``__exit__`` restored the previous
    handlers, delivers the signal to them."""

    def __init__(self):
        self.requested, self.signum, self._saved = None, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in stop_signals():
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.requested:
            raise E.Interrupted(f"{name} received again while stopping")
        self.requested, self.signum = name, signum

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return False

    def resend(self, message, history=None):
        """Pass the signal on to the handler that was there before the run: Python's default for
        SIGINT raises KeyboardInterrupt (we raise ``errors.Interrupted`` with ``message``, a
        subclass); the default for SIGTERM, SIGHUP and SIGQUIT ends the process, as the sender meant;
        a caller's own handler runs as it would have. If that handler returns, so does this.
        The ``Interrupted`` raised carries ``history``, so a caller can see what finished."""
        if self.signum is None:
            return
        if self._saved.get(self.signum) is signal.default_int_handler:
            e = E.Interrupted(message)
            e.history = history
            raise e
        signal.raise_signal(self.signum)


def _prepare_split(model, split, log):
    """Check the parts against the model; for the log loss, labels as 0/1 (-1/1 mapped)."""
    rows = (Dataset, DiskDataset)
    parts = (split,) if isinstance(split, rows) else tuple(split) if isinstance(split, tuple) else ()
    if len(parts) not in (1, 3) or not all(isinstance(p, rows) for p in parts):
        raise E.OptionTypeError("split must hold three Datasets (train, valid, test), e.g. datasets.Split, "
                                "or be one Dataset (training without validation)")
    n = model.config["n_features"]
    for p in parts:
        if p.n_features > n:
            raise E.DataError(f"{p.name}: its ids span {p.n_features} features, the model has {n}")
    if model.config["loss"] != "log":
        return parts
    out, notes = [], set()
    for p in parts:
        if isinstance(p, DiskDataset):           # its labels were made 0/1 when the cache was written
            out.append(p)
            continue
        y, note = binary_labels(B.to_numpy(p.y), p.name)
        notes.add(note)
        out.append(p.with_labels(y.astype(p.y.dtype)) if note else p)
    for note in sorted(notes - {""}):
        if log:
            log(note)
    return tuple(out)


def fit(model, split, optimizer="adagrad", lr=0.05, batch_size=128, epochs=200, early_stop=None, patience=4,
        seed=None, progress=None, log=print, history_path=None, eval_train=False, on_interrupt="raise",
        on_epoch=None, threads=None):
    """Train ``model`` on ``split.train``; validate and test every epoch.

    Parameters
    ----------
    model : NFM or FM (its backend decides where training runs)
    split : datasets.Split (train, valid, test); host arrays, moved once here. Or one
        ``Dataset``: training without validation (every epoch runs, the final weights are kept)
    optimizer : name ('adagrad', 'adam', 'sgd', 'momentum') or an ``optim.Optimizer``
    lr : learning rate (> 0), used when ``optimizer`` is a name
    batch_size, epochs : at least 1 each; the training set must hold one batch
    early_stop : stop when the validation metric rose ``patience`` epochs in a row
        (default: when there is a validation set)
    seed : shuffling seed (default: the model's seed + 2)
    progress : a progress bar per epoch (default: when stderr is a terminal)
    log : where the per-epoch lines go (``None``: silent)
    history_path : write one JSON line per epoch there, at the end of the run
        (through a temporary file; an existing file is replaced only if at
        least one epoch finished)
    eval_train : also evaluate the whole training set in evaluation mode each
        epoch (the original does; costs time). Otherwise the train column is
        the running training-mode metric of the epoch's batches (with dropout).
    on_epoch : called as ``on_epoch(record, is_best)`` after each finished epoch (the
        record is the dict that goes into ``History.epochs``), instead of the built-in line
        to ``log``: for callers that print their own (the estimators, in y's units)
    threads : BLAS threads for the products (default: one, or what your OPENBLAS_NUM_THREADS /
        OMP_NUM_THREADS says; see ``nfm_numpy.threads`` for why one)
    on_interrupt : what a stop signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) does once the
        current step has finished, the best weights are back and the history is written:
        ``"raise"`` (default) passes the signal on to the handler there before ``fit``
        (Ctrl-C raises ``errors.Interrupted``, a ``KeyboardInterrupt`` whose ``history``
        is the run's ``History``; SIGTERM ends the process unless the caller handles it);
        ``"return"`` returns the ``History`` with ``outcome == "interrupted"`` (the command
        line, which then saves and exits 130).

    Returns a ``History``; the model ends with the best-validation weights.
    Bad arguments raise ``errors.OptionError``; a loss that is not finite on the
    first batch at the initial weights is bad input (``errors.DataError``: the
    values overflow the model); a run that diverges later returns normally, with
    ``History.outcome`` saying so.
    """
    from .model import NFM
    if not isinstance(model, NFM):
        raise E.OptionTypeError(f"model must be an NFM or FM, got {type(model).__name__}")
    batch_size = E.integer(batch_size, "batch_size", 1)
    epochs = E.integer(epochs, "epochs", 1)
    patience = E.integer(patience, "patience", 1)
    eval_train = E.flag(eval_train, "eval_train")
    on_interrupt = E.choice(on_interrupt, "on_interrupt", ("raise", "return"))
    threads = check_threads(threads)
    seed = model.config["seed"] + 2 if seed is None else E.integer(seed, "seed", 0)
    if isinstance(optimizer, str):
        opt = optim.make(optimizer, lr)
    elif isinstance(optimizer, optim.Optimizer):
        opt = optimizer
    else:
        raise E.OptionTypeError(f"optimizer must be a name ({', '.join(optim.OPTIMIZERS)}) or an "
                                f"optim.Optimizer, got {optimizer!r}")
    if log is not None and not callable(log):
        raise E.OptionTypeError(f"log must be a function such as print, or None, got {log!r}")
    if on_epoch is not None and not callable(on_epoch):
        raise E.OptionTypeError(f"on_epoch must be a function (record, is_best), or None, got {on_epoch!r}")
    if history_path is not None:
        check_output(history_path, "history")
    parts = _prepare_split(model, split, log)
    has_valid = len(parts) == 3
    early_stop = has_valid if early_stop is None else E.flag(early_stop, "early_stop")
    if early_stop and not has_valid:
        raise E.OptionError("early_stop needs a validation set: pass a Split (train, valid, test)")
    same_test = has_valid and split[2] is split[1]       # e.g. the estimators' held-out rows: score them once
    if model.config["loss"] == "square":                          # predictions are clipped to it when scored
        y = None if isinstance(parts[0], DiskDataset) else B.to_numpy(parts[0].y)
        model.label_range = parts[0].label_range if y is None else (float(y.min()), float(y.max()))
    xp, dev = model.xp, model.device
    dtype = np.dtype(model.config["dtype"])
    train, valid, test = [d.to(xp, dev, dtype) for d in parts] + [None] * (3 - len(parts))
    if same_test:
        test = valid
    loss_name = model.config["loss"]
    hist = History("rmse" if loss_name == "square" else "logloss")
    rng = np.random.default_rng(seed)
    N, Bsz = len(train), batch_size
    steps = train.steps(Bsz) if isinstance(train, DiskDataset) else N // Bsz
    if steps == 0:
        raise E.OptionError(f"batch_size {Bsz} is larger than the training set ({N} rows)")
    if progress is None:
        progress = sys.stderr.isatty()
    best = (math.inf, _copy(model.params), _copy(model.state))
    initial = best                        # kept, to tell an input that overflows from a step size that diverges
    try:
        with _StopOnSignal() as stop, blas_threads(threads):
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                total, overflow = 0.0, None
                for step, (shuffled, i) in enumerate(_bar(_batches(train, rng, Bsz, xp, dev, dtype), progress,
                                                          f"epoch {epoch}", steps)):
                    w = shuffled.weight
                    try:
                        loss, grads = model._loss_and_grads(
                            shuffled.idx[i:i + Bsz, ...], shuffled.val[i:i + Bsz, ...],
                            shuffled.y[i:i + Bsz, ...], None if w is None else w[i:i + Bsz, ...])
                        loss = float(loss)                  # one scalar to the host a step
                    except FloatingPointError as e:         # where the user made NumPy raise on overflow
                        loss, overflow = math.nan, e
                    if not math.isfinite(loss):
                        batch = (shuffled.idx[i:i + Bsz, ...], shuffled.val[i:i + Bsz, ...],
                                 shuffled.y[i:i + Bsz, ...], None if w is None else w[i:i + Bsz, ...])
                        if epoch == 1 and step == 0:       # no update yet: the input, not the step size
                            _overflow_at_start(model, train, loss, batch)
                        _overflow_in_batch(model, initial, batch, train.name, loss, epoch, step + 1)
                        what = overflow or f"the loss is {loss}"
                        hist.outcome, hist.stopped = "diverged", f"{what} at epoch {epoch}, batch {step + 1} of {steps}"
                        break
                    opt.step(model.params, grads)
                    total += loss
                    if stop.requested:
                        hist.outcome = "interrupted"
                        hist.stopped = f"{stop.requested} at epoch {epoch}, after batch {step + 1} of {steps}"
                        break
                if hist.outcome:                        # the epoch did not finish
                    break
                seconds = time.perf_counter() - t0
                rec = {"epoch": epoch, "seconds": round(seconds, 4)}
                if eval_train:
                    rec["train"] = evaluate(model, train)[hist.metric]
                else:
                    rec["train"] = math.sqrt(2 * total / (steps * Bsz)) if loss_name == "square" else total / steps
                if valid is None:                       # no validation: the last finished epoch is kept
                    hist.epochs.append(rec)
                    hist.best_epoch = epoch
                    best = (math.inf, _copy(model.params), _copy(model.state))
                    if on_epoch is not None:
                        on_epoch(rec, True)
                    elif log:
                        log(f"epoch {epoch:3d}  train {rec['train']:.4f}  [{seconds:.2f} s]")
                    if stop.requested:
                        hist.outcome, hist.stopped = "interrupted", f"{stop.requested} after epoch {epoch}"
                        break
                    continue
                v = evaluate(model, valid)
                t = v if test is valid else evaluate(model, test)
                rec.update(valid=v[hist.metric], test=t[hist.metric], valid_auc=v.get("auc"), test_auc=t.get("auc"))
                if not math.isfinite(rec["valid"]):
                    hist.outcome = "diverged"
                    hist.stopped = f"the validation {hist.metric} is {rec['valid']} at epoch {epoch}"
                    break
                hist.epochs.append(rec)
                if rec["valid"] < best[0]:
                    best = (rec["valid"], _copy(model.params), _copy(model.state))
                    hist.best_epoch = epoch
                if on_epoch is not None:
                    on_epoch(rec, hist.best_epoch == epoch)
                elif log:
                    log(f"epoch {epoch:3d}  train {rec['train']:.4f}  valid {rec['valid']:.4f}  "
                        f"test {rec['test']:.4f}  [{seconds:.2f} s]" + ("  *" if hist.best_epoch == epoch else ""))
                if stop.requested:
                    hist.outcome, hist.stopped = "interrupted", f"{stop.requested} after epoch {epoch}"
                    break
                if early_stop and should_stop(hist.column("valid"), patience):
                    hist.outcome = "early_stop"
                    hist.stopped = f"early stop: validation {hist.metric} rose {patience} epochs in a row"
                    break
            else:
                hist.outcome, hist.stopped = "max_epochs", f"reached {epochs} epochs"
    finally:
        model.params, model.state = best[1], best[2]
        if history_path is not None and hist.epochs:
            text = "".join(json.dumps(rec) + "\n" for rec in hist.epochs)
            write_atomically(history_path, lambda f: f.write(text.encode()), "history")
    kept = (f"weights restored to epoch {hist.best_epoch} "
            f"({'the best validation epoch' if hist.best_epoch else 'the initial weights'})")
    if log and hist.outcome in ("diverged", "interrupted"):
        log(f"{hist.stopped}; training stopped, {kept}")
    if hist.interrupted and on_interrupt == "raise":
        stop.resend(f"{hist.stopped}; the model keeps the {kept}", hist)
    return hist


def _overflow_at_start(model, train, loss, batch):
    """The loss is not finite on the first batch, before any update: no learning rate is to blame.
    Say which input is too large for the model's dtype (of the set in memory; on disk, of the batch)."""
    val, y, w = batch[1:] if isinstance(train, DiskDataset) else (train.val, train.y, train.weight)
    raise E.DataError(f"{train.name}: the loss is {loss} on the first batch at the initial weights, before any "
                      f"update: the inputs overflow the model's {model.config['dtype']} "
                      f"{_sizes(model, val, y, w, '')}")


def _overflow_in_batch(model, initial, batch, name, loss, epoch, step):
    """The loss is not finite on a later batch. If that batch overflows at the initial weights too,
    its inputs are too large for the model's dtype (bad input, named here); otherwise the steps
    diverged (returns, and the run reports a divergence)."""
    params, state = model.params, model.state
    model.params, model.state = _copy(initial[1]), _copy(initial[2])
    try:
        with np.errstate(all="ignore"):
            again = float(model._loss_and_grads(*batch)[0])
    except FloatingPointError:
        again = math.nan
    finally:
        model.params, model.state = params, state
    if math.isfinite(again):
        return
    idx, val, y, weight = batch
    raise E.DataError(f"{name}: the loss is {loss} at epoch {epoch}, batch {step}, and that batch overflows at the "
                      f"initial weights too, so no learning rate is to blame: its inputs overflow the model's "
                      f"{model.config['dtype']} {_sizes(model, val, y, weight, ' in it')}")


def _sizes(model, val, y, weight, scope):
    """'(largest |x| ..., largest |label| ...[, largest row weight ...]); scale them down[; float64 hint]'."""
    def largest(a):
        return float(np.abs(B.to_numpy(a)).max()) if a is not None and a.shape[0] else 0.0
    sizes = f"largest |x|{scope} {largest(val):.3g}, largest |label| {largest(y):.3g}"
    if weight is not None:
        sizes += f", largest row weight {largest(weight):.3g}"
    hint = "; --dtype float64 (dtype='float64') holds larger values" if model.config["dtype"] == "float32" else ""
    return f"({sizes}); scale them down{hint}"


def _batches(train, rng, Bsz, xp, dev, dtype):
    """``(shuffled rows, i)`` for each batch of an epoch: the batch is rows i to i + Bsz.

    In memory: the set shuffled once (three gathers of the whole set), then contiguous slices,
    cheaper than three small gathers per step. On disk (``ondisk.DiskDataset``): each shard, in a
    random order, shuffled, moved to the model's device and dtype; one shard is the same as in memory.
    """
    if isinstance(train, DiskDataset):
        for block in train.shuffled_blocks(rng, Bsz):
            idx, val, y = (B.to_device(a, xp, dev) for a in block[:3])
            moved = type(block)(idx, B.astype(val, dtype), B.astype(y, dtype), None)
            for i in range(0, len(block.y) // Bsz * Bsz, Bsz):
                yield moved, i
        return
    steps = len(train) // Bsz
    perm = B.to_device(rng.permutation(len(train))[: steps * Bsz], xp, dev)      # (steps * B,)
    shuffled = train.batch(perm)
    for step in range(steps):
        yield shuffled, step * Bsz


def _bar(it, enabled, desc, total=None):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, leave=False, mininterval=0.5, total=total)


def pretrain_fm(nfm, split, keep_prob=None, log=print, **fit_kw):
    """The paper's FM pretraining: train an FM of the same size, then start the NFM's
    w0, w and V from it (only if at least one FM epoch finished). Returns the FM's History."""
    from .model import FM
    c = nfm.config
    fm = FM(c["n_features"], c["k"], keep_prob=keep_prob or c["keep_prob"][-1], batch_norm=False,
            loss=c["loss"], l2=c["l2"], dtype=c["dtype"], seed=c["seed"], backend=nfm.xp, device=nfm.device,
            impl=c["impl"], init_std=c["init_std"])
    if log:
        log("pretraining FM (w0, w and V start NFM):")
    hist = fit(fm, split, log=log, **fit_kw)
    if hist.best_epoch:
        for name in ("w0", "w", "V"):
            nfm.params[name] = fm.params[name]
    return hist
