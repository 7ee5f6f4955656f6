"""scikit-learn estimators: ``FMRegressor``, ``FMClassifier``, ``NFMRegressor``, ``NFMClassifier``,
``BayesFMRegressor`` and ``BayesFMClassifier`` (the Bayesian FM of ``nfm_numpy.bayes``, by Gibbs
sampling), and ``FeatureEncoder``, the CSV route's ``features.Encoder`` as a transformer (DataFrame in,
CSR out).

They take X as a scipy.sparse matrix or a dense array (n_samples, n_features)
and y, as every scikit-learn estimator does, so they work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score`` (on one machine, or spread over a
cluster through joblib's Dask or Ray backends). Each column of X is a feature
i and its entry the value x_i: one-hot columns (``OneHotEncoder``) are the
paper's setting; real-valued columns work too, best standardised.

scikit-learn is an optional extra that only this module needs
(``pip install scikit-learn``, or ``pip install "nfm-numpy[sklearn]"``);
current scikit-learn requires its ``BaseEstimator`` (for estimator tags) in
``Pipeline`` and ``GridSearchCV``, so these classes build on it.

Choices a user should know:

* Regressors standardise y for training (the summed square loss and its
  learning rate then fit any scale of y) and return predictions in y's units.
* Classifiers are binary: ``classes_`` holds the two label values (any two),
  the second is the positive class; ``predict_proba`` is (n, 2);
  ``decision_function`` is the logit.
* ``sample_weight`` scales each row's term of the loss (a weight of 2 counts
  a row twice in expectation; training is stochastic, so not bit for bit).
* ``early_stopping`` holds out ``validation_fraction`` of the rows and keeps
  the best epoch's weights, as the command line does; off by default.
  ``fit(X, y, eval_set=(X_val, y_val))`` (or ``[(X_val, y_val)]``) stops early on
  the caller's own validation rows instead: nothing is held out of X.
* Defaults differ from the command line's in k, layers, FM's keep_prob, epochs,
  early_stopping and random_state; README ("scikit-learn") has the table and why.
* ``BayesFMRegressor`` and ``BayesFMClassifier`` have no learning rate, regularisation or epochs:
  the priors' precisions are sampled with the weights. They run ``burn_in`` sweeps, then
  ``n_samples``, keep ``keep`` (default 20) samples evenly spaced and predict with the posterior
  mean over those (the classifier: of Phi(yhat); ``decision_function`` is the logit of that
  probability). The regressor standardises y too: the hyper-priors (libFM's Gamma(1/2, 1/2) on the
  noise and prior precisions) and ``init_std`` are not scale-free, and mean libFM's defaults for y of
  unit spread. No ``sample_weight``, ``warm_start`` or ``eval_set``.
* ``warm_start=True`` continues from the fitted weights and optimiser state.
  The parameters that shape the model (k, layers, keep_prob, batch_norm,
  activation, l2, dtype, backend) cannot change between such fits (an error
  names the one that did); lr applies to the next fit, and another optimizer
  starts with fresh state.

Errors follow the package's rule (README, "Errors and exit codes"): each
names the estimator, the argument and, for arrays, the first offending entry
as Python indexes it (``X[3, 1]``, ``y[5]``, counting from 0).
Hyper-parameters are checked when ``fit`` runs (scikit-learn's convention:
``__init__`` only stores them) and raise ``errors.OptionError``; unusable
X, y or sample_weight raise ``errors.DataError`` (both are ``ValueError``).
No predict path returns NaN or inf: predictions that are not finite (inputs
that overflow the model) raise ``errors.RunFailed``, as on the command line.
A fit that raises leaves the estimator as it was. Training that diverges
before any epoch finished raises ``errors.RunFailed``; later, the estimator
keeps the best epoch's weights and says so with a ``ConvergenceWarning``.
"""
from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_array, check_is_fitted, check_random_state, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("nfm_numpy.estimators needs scikit-learn (an optional extra): pip install scikit-learn, "
                      "or pip install 'nfm-numpy[sklearn]'") from e

import scipy.sparse as sp
from scipy import special

from . import backend as B, bayes, errors as E, features as F, layers as L, optim
from .data import Dataset, Split, from_csr
from .model import DTYPES, FM, NFM
from .train import History, fit as fit_model, predictions

# the parameters that shape the fitted model: warm_start cannot change them
SHAPING = ("k", "layers", "keep_prob", "batch_norm", "activation", "l2", "dtype")


def _all_or_nothing(fit):
    """A fit that raises an error leaves the estimator as it was: its fitted attributes (model_,
    y_mean_, classes_, n_features_in_, ...) are put back, so it never predicts with a model from
    one fit and a scale or classes from another, nor with the initial weights of a fit that
    failed. An interrupt (Ctrl-C) is passed on too: after at least one epoch the estimator keeps
    the best weights so far (``history_`` says how far it got), before any it is put back as well."""
    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

        def put_back():
            for k in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                delattr(self, k)
            vars(self).update(before)
        try:
            return fit(self, *args, **kwargs)
        except (E.InputError, E.RunFailed):
            put_back()
            raise
        except KeyboardInterrupt as e:
            hist = getattr(e, "history", None)
            if hist is None or not hist.best_epoch:
                put_back()
            raise
    return wrapper


def _named(method):
    """Make the errors of a public method name the estimator ("NFMRegressor: k must be >= 1, got 0"):
    one wrapper for fit and every predict path, so no message can forget it."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (E.InputError, E.RunFailed) as e:
            name = type(self).__name__
            if str(e).startswith(f"{name}:"):
                raise
            try:
                named = type(e)(f"{name}: {e}")
            except Exception:                      # pragma: no cover - an error class with another signature
                raise e from None
            raise named.with_traceback(e.__traceback__) from None
    return wrapper


def _finite_predictions(out):
    """``out`` if every prediction is finite; else ``RunFailed`` naming the count and the first row (every
    predict path of every estimator ends here: never a NaN or inf handed back)."""
    bad = ~np.isfinite(out)
    if bad.any():
        raise E.RunFailed(f"{int(bad.sum())} of {out.size} predictions are not finite, the first for row "
                          f"{int(np.argmax(bad))} of X (the values of X overflow this model)")
    return out


def _one_line(message, limit=400):
    """scikit-learn's message on one line, as every error of the package is: its line breaks
    become spaces, and an array it prints in full (complex X) is cut at ``limit`` characters."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[:limit] + " ..."


# ------------------------------------------------------------------ checks of arrays
def _show(v):
    """A value as the messages write it; NaN and inf spelled so (scikit-learn's checks look for them)."""
    return "NaN" if v != v else f"{v:g}"


def _first_bad_dense(bad):
    """The index (tuple) of the first True of a boolean array, in row-major order."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _at(name, index):
    return f"{name}[{', '.join(map(str, index))}]"


def _check_values(X, dtype, name="X"):
    """X (float64, dense or CSR) must hold finite values that fit the model's ``dtype``.

    Names the first offending entry, X[row, column]. A value too large for float32
    would become inf when the model reads it (1e200 into float32), so it is refused
    here, with the way out (rescale X, or dtype='float64').
    """
    values = X.data if sp.issparse(X) else X
    big = np.finfo(dtype).max
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > big)
    if not bad.any():
        return
    if sp.issparse(X):
        pos = int(np.argmax(bad))
        row = int(np.searchsorted(X.indptr, pos, side="right")) - 1
        index, v = (row, int(X.indices[pos])), float(values[pos])
    else:
        index = _first_bad_dense(bad)
        v = float(values[index])
    if not math.isfinite(v):
        raise E.DataError(f"{_at(name, index)} is {_show(v)}: {name} must hold finite numbers (NaN and inf are "
                          "not values; impute or drop them first)")
    raise E.DataError(f"{_at(name, index)} = {v:g} is too large for {np.dtype(dtype).name} (max {big:.3g}); "
                      f"rescale {name}, or use dtype='float64'")


def _check_finite(a, name):
    """A numeric 1-D array (y or sample_weight) must be finite; names the first bad entry."""
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        raise E.DataError(f"{name}[{i}] is {_show(float(a[i]))}: {name} must hold finite numbers")


def _precheck_y(y):
    """y's NaN and inf named by position, before scikit-learn's own check (which names none).
    Only numeric y is looked at here; anything else is scikit-learn's to judge."""
    if y is None or sp.issparse(y):
        return
    if isinstance(y, np.ma.MaskedArray):               # np.asarray would drop the mask and use the hidden values
        raise E.DataError("y is a masked array: fill or drop its masked entries first (np.ma.compressed, "
                          ".filled)")
    try:
        a = np.asarray(y)
    except Exception:
        return
    if a.ndim == 2 and a.shape[1] == 1:                    # a column vector, which scikit-learn accepts
        a = a[:, 0]
    if a.dtype.kind in "fc" and a.ndim == 1:
        _check_finite(a, "y")


def _numbers(y, name="y"):
    """A regressor's y as float64; a label that is not a number is named (y[3] = 'high')."""
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    values = np.asarray(y, dtype=object).ravel()
    for i, v in enumerate(values):
        try:
            float(v)
        except (TypeError, ValueError):
            raise E.DataError(f"{name}[{i}] = {v!r} is not a number: a regressor needs numeric {name}") from None
    raise E.DataError(f"{name} must hold numbers")      # pragma: no cover - each value converts but the whole does not


def _weights(sample_weight, n, dtype):
    """``sample_weight`` as a float64 (n,) array, or None; refuses what would train on nonsense.

    Weights must be finite, >= 0, fit the model's ``dtype``, and not all be 0 (a fit
    that no row counts in learns nothing, and would say nothing). A number is every
    row's weight, as in scikit-learn.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes)):
        raise E.OptionTypeError(f"sample_weight must be numbers, got {sample_weight!r}")
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise E.OptionTypeError(f"sample_weight must be numbers ({e})") from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise E.DataError(f"sample_weight has shape {w.shape}; X has {n} rows, so it must have shape ({n},)")
    _check_finite(w, "sample_weight")
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise E.DataError(f"sample_weight[{i}] = {w[i]:g} is negative: weights must be >= 0")
    big = np.finfo(dtype).max
    if (w > big).any():
        i = int(np.argmax(w > big))
        raise E.DataError(f"sample_weight[{i}] = {w[i]:g} is too large for {np.dtype(dtype).name} (max {big:.3g}); "
                          "rescale the weights (only their ratios matter to the fit)")
    if not w.any():
        raise E.DataError(f"every sample_weight is zero (all {n} rows): no row would count in the fit")
    return w


def _eval_pair(eval_set):
    """``eval_set`` as its pair (X_val, y_val), or None: a tuple (X_val, y_val), or a list holding one such
    pair (xgboost's and LightGBM's form). More than one validation set is refused: early stopping
    watches one."""
    if eval_set is None:
        return None
    pair = eval_set
    if isinstance(eval_set, list):
        if len(eval_set) != 1:
            raise E.OptionError(f"eval_set must be (X_val, y_val) or [(X_val, y_val)] (one validation set: early "
                                f"stopping watches one), got a list of {len(eval_set)} items")
        pair = eval_set[0]
    if not isinstance(pair, (tuple, list)):
        raise E.OptionTypeError(f"eval_set must be a pair (X_val, y_val) or a list of one such pair, got "
                                f"{type(pair).__name__}")
    if len(pair) != 2:
        raise E.OptionError(f"eval_set must be a pair (X_val, y_val), got {len(pair)} items")
    if pair[0] is None or pair[1] is None:
        raise E.OptionTypeError(f"eval_set needs both X_val and y_val, got {'X_val' if pair[0] is None else 'y_val'}"
                                " = None")
    return pair


def _finite_on(model, data):
    """Whether ``model``'s outputs on the Dataset ``data`` are all finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(predictions(model, data, scores=True)).all())


def _validated(est, X, y, reset, dtype, **kw):
    """``est._validate``: scikit-learn's validation of X (and y), then X's values against the
    model's dtype (``dtype()``, called once X is validated)."""
    only_X = isinstance(y, str) and y == "no_validation"        # scikit-learn's marker: no y (predict)
    if isinstance(X, np.ma.MaskedArray):                  # np.asarray would use the hidden values
        raise E.DataError("X is a masked array: fill or drop its masked entries first (.filled, np.ma.compress_rows)")
    if not only_X:
        _precheck_y(y)
    args = (X,) if only_X else (X, y)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # its quick finiteness test sums y: [1e308, 1e308]
            out = validate_data(est, *args, accept_sparse="csr", dtype=np.float64, reset=reset,
                                ensure_all_finite=False, **kw)
    except TypeError as e:
        raise E.OptionTypeError(_one_line(str(e))) from None
    except ValueError as e:
        raise E.DataError(_one_line(str(e))) from None
    X = out if only_X else out[0]
    _check_values(X, np.dtype(dtype()))
    return out


# ------------------------------------------------------------------ checks of hyper-parameters
def _fraction(value, name):
    """A fraction strictly between 0 and 1 (of the rows held out)."""
    value = E.real(value, name)
    if not 0.0 < value < 1.0:
        raise E.OptionError(f"{name} must be in (0, 1), got {value:g}")
    return value


def _verbose(value):
    """scikit-learn's verbose: a bool or an int >= 0."""
    return int(value) if isinstance(value, bool) else E.integer(value, "verbose", 0)


def _dtype(value):
    """'float32' / 'float64', also given as np.float32 or np.dtype('float64')."""
    try:
        value = np.dtype(value).name if not isinstance(value, str) else value
    except TypeError:
        pass
    return E.choice(value, "dtype", DTYPES)


def _optimizer(value):
    if isinstance(value, optim.Optimizer):
        return value
    if not isinstance(value, str):
        raise E.OptionTypeError(f"optimizer must be a name ({', '.join(optim.OPTIMIZERS)}) or an "
                                f"nfm_numpy.optim.Optimizer, got {value!r}")
    return E.choice(value, "optimizer", optim.OPTIMIZERS)


def _random_state(value):
    try:
        return check_random_state(value)
    except ValueError:
        raise E.OptionTypeError(f"random_state must be None, an int or a numpy RandomState, got {value!r}") from None


def _layers_and_keep(est):
    """(layers, keep_prob) as the model takes them, checked (FM: no layers, one keep probability)."""
    if est._kind == "fm":
        keep = est.keep_prob
        if isinstance(keep, (list, tuple)) and len(keep) == 1:       # as FM takes it: [p] is p
            keep = keep[0]
        if not isinstance(keep, numbers.Real):
            raise E.OptionTypeError(f"keep_prob must be one number in (0, 1] for an FM, got {keep!r}")
        return [], [E.probability(keep, "keep_prob")]
    layers = E.int_list(est.layers, "layers", 1)
    keep = E.float_list(est.keep_prob, "keep_prob", E.probability)
    if len(keep) != len(layers) + 1:
        raise E.OptionError(f"keep_prob needs {len(layers) + 1} values (one per hidden layer, the last for the "
                            f"Bi-Interaction layer), got {len(keep)}: {keep}")
    return layers, keep


class _Base(BaseEstimator):
    """Shared fitting code; subclasses set the model kind and the loss."""

    _kind = "nfm"
    _loss = "square"

    # ------------------------------------------------------------ hyper-parameters
    def _check_params(self):
        """Every hyper-parameter, checked and converted; a dict. Runs at the start of each fit."""
        layers, keep = _layers_and_keep(self)
        return dict(
            k=E.integer(self.k, "k", 1), layers=layers, keep_prob=keep,
            batch_norm=E.flag(self.batch_norm, "batch_norm"),
            activation=L.check_activation(getattr(self, "activation", "identity")),
            l2=E.real(self.l2, "l2", 0.0), optimizer=_optimizer(self.optimizer),
            lr=E.real(self.lr, "lr", 0.0, lo_open=True), batch_size=E.integer(self.batch_size, "batch_size", 1),
            epochs=E.integer(self.epochs, "epochs", 1), early_stopping=E.flag(self.early_stopping, "early_stopping"),
            validation_fraction=_fraction(self.validation_fraction, "validation_fraction"),
            patience=E.integer(self.patience, "patience", 1), dtype=_dtype(self.dtype),
            random_state=_random_state(self.random_state), warm_start=E.flag(self.warm_start, "warm_start"),
            verbose=_verbose(self.verbose), backend=B.resolve(self.backend))

    def _continues(self, p):
        """True when this fit continues the fitted model (warm_start); then the parameters that
        shape the model must be those it was built with: a changed k would otherwise be ignored."""
        if not (p["warm_start"] and hasattr(self, "model_")):
            return False
        self._same_model(p, "warm_start", "warm_start=False to fit anew")
        return True

    def _same_model(self, p, how, way_out):
        """The parameters that shape the model must be those the fitted model was built with."""
        c = self.model_.config
        for key in SHAPING:
            if p[key] != c[key]:
                raise E.OptionError(f"{how} continues the fitted model, built with {key}={c[key]!r}; "
                                    f"{key} is now {p[key]!r} (set it back, or {way_out})")
        if p["backend"] is not self.model_.xp:
            raise E.OptionError(f"{how} continues the fitted model, which lives on "
                                f"{self.model_.xp.__name__}; backend is now {p['backend'].__name__}")

    def _model(self, n_features, seed, p):
        common = dict(k=p["k"], keep_prob=p["keep_prob"], batch_norm=p["batch_norm"], l2=p["l2"], loss=self._loss,
                      dtype=p["dtype"], seed=seed, backend=p["backend"])
        if self._kind == "fm":
            return FM(n_features, **common)
        return NFM(n_features, layers=p["layers"], activation=p["activation"], **common)

    def _optimizer(self, p, first):
        """The optimiser: a new one on a first fit (a copy of one given, so that its state is the
        estimator's, not shared between fits or clones); on a warm start the same one, with the
        current lr, or a fresh one if another was named."""
        given = p["optimizer"]
        if isinstance(given, optim.Optimizer):
            return copy.deepcopy(given) if first else self.optimizer_
        if first or type(self.optimizer_) is not type(optim.make(given, p["lr"])):
            return optim.make(given, p["lr"])
        self.optimizer_.lr = p["lr"]
        return self.optimizer_

    # ------------------------------------------------------------ data
    def _validate(self, X, y="no_validation", reset=False, **kw):
        """scikit-learn's validation of X (and y): shapes, types, n_features_in_. Its errors become
        ``DataError`` (``OptionTypeError`` for a wrong type); finiteness is checked by our code,
        which names the entry (X[3, 1])."""
        dtype = (lambda: self.model_.config["dtype"]) if not reset else (lambda: _dtype(self.dtype))
        return _validated(self, X, y, reset, dtype, **kw)

    def _eval_rows(self, eval_set, dtype):
        """``eval_set`` checked: (X_val as validated X is, y_val as a 1-D array), or None. Called after X
        was validated (so n_features_in_ and feature_names_in_ are X's). Errors say ``eval_set:`` and
        name X_val or y_val and the entry (X_val[2, 0], y_val[5])."""
        pair = _eval_pair(eval_set)
        if pair is None:
            return None
        X_val, y_val = pair
        try:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    Xv = check_array(X_val, accept_sparse="csr", dtype=np.float64, ensure_all_finite=False,
                                     input_name="X_val")
            except TypeError as e:
                raise E.OptionTypeError(_one_line(str(e))) from None
            except ValueError as e:
                raise E.DataError(_one_line(str(e))) from None
            if Xv.shape[1] != self.n_features_in_:
                raise E.DataError(f"X_val has {Xv.shape[1]} columns; X has {self.n_features_in_}: they must be the "
                                  "same features (in a Pipeline, transform X_val with its earlier steps first)")
            names = getattr(self, "feature_names_in_", None)
            cols = getattr(X_val, "columns", None)
            if names is not None and cols is not None and [str(c) for c in cols] != list(names):
                raise E.DataError(f"X_val's columns {[str(c) for c in cols][:5]} are not X's {list(names)[:5]} "
                                  "(the same columns, in the same order)")
            _check_values(Xv, dtype, "X_val")
            if sp.issparse(y_val):
                raise E.OptionTypeError("y_val must be a 1-D array, got a sparse matrix")
            yv = np.asarray(y_val) if not hasattr(y_val, "to_numpy") else y_val.to_numpy()
            if yv.ndim == 2 and yv.shape[1] == 1:
                yv = yv[:, 0]
            if yv.ndim != 1:
                raise E.DataError(f"y_val must be 1-D, got shape {yv.shape}")
            if yv.shape[0] != Xv.shape[0]:
                raise E.DataError(f"X_val has {Xv.shape[0]} rows and y_val {yv.shape[0]} values; they must match")
        except (E.InputError, E.RunFailed) as e:
            raise type(e)(f"eval_set: {e}") from None
        return Xv, yv

    def _rows(self, X, y=None, weight=None, name="X"):
        """Validated X (float64, dense or CSR) and y as a ``Dataset`` of padded rows (zeros dropped)."""
        if not sp.issparse(X):
            X = sp.csr_array(X)
        dtype = np.dtype(self.model_.config["dtype"])
        batch = from_csr(X, y, dtype, weight)
        labels = batch.y if batch.y is not None else np.zeros(batch.idx.shape[0], dtype=dtype)
        return Dataset(batch.idx, batch.val, labels, max(X.shape[1], 1), name, weight=batch.weight)

    # ------------------------------------------------------------ fitting
    def _fit(self, X, y, weight, p, first, valid=None):
        """Train on validated X and y (standardised, or 0/1); ``valid``: the eval_set's (X_val, y_val),
        validated and in the same form, or None. Returns self."""
        if first:
            seed = int(p["random_state"].randint(0, 2**31 - 1))
            self.model_ = self._model(max(X.shape[1], 1), seed, p)
            self.n_epochs_ = 0
        self.optimizer_ = self._optimizer(p, first)
        data = self._rows(X, y, weight)
        if valid is not None:                   # the user's own validation rows: no holdout from X
            vdata = self._rows(*valid, name="eval_set")
            target, n_train = Split(data, vdata, vdata), len(data)
        else:
            target, n_train = self._holdout(data, p)
        metric = "rmse" if self._loss == "square" else "logloss"

        def line(rec, best):                    # one verbose line as each epoch ends, in y's units
            print(self._epoch_line(self._record_in_units(rec), best, metric), flush=True)
        try:
            hist = fit_model(self.model_, target, optimizer=self.optimizer_,
                             batch_size=min(p["batch_size"], n_train), epochs=p["epochs"],
                             early_stop=p["early_stopping"] or valid is not None, patience=p["patience"], log=None,
                             on_epoch=line if p["verbose"] else None,
                             seed=self.model_.config["seed"] + 2 + self.n_epochs_)
        except KeyboardInterrupt as e:         # Ctrl-C: record how far it got, then pass it on
            if getattr(e, "history", None) is not None:
                self.history_ = self._in_units(e.history)
                self.n_epochs_ += len(e.history.epochs)
            raise
        self.history_ = self._in_units(hist)
        self.n_epochs_ += len(hist.epochs)
        if hist.interrupted and not hist.best_epoch:   # a caller's own signal handler returned: no model to keep
            raise E.RunFailed(f"training was interrupted ({hist.stopped}) before any epoch finished")
        if hist.diverged and not hist.best_epoch:
            raise E.RunFailed(f"training diverged ({hist.stopped}) before any epoch finished; try a smaller lr")
        if hist.diverged and not _finite_on(self.model_, data):
            # without a holdout the kept epoch is the last finished one, whose final step may have overflowed
            raise E.RunFailed(f"training diverged ({hist.stopped}); the weights of epoch {hist.best_epoch}, the "
                              "last finished, give outputs that are not finite on X; try a smaller lr")
        if hist.diverged:   # scikit-learn's way for a usable model from a troubled optimisation: a warning
            warnings.warn(f"{type(self).__name__}: training diverged ({hist.stopped}); the estimator keeps the "
                          f"weights of epoch {hist.best_epoch}, the best; try a smaller lr", ConvergenceWarning,
                          stacklevel=5)   # the caller of fit (past the two wrappers)
        return self

    def _partial_fit(self, X, y, weight, p, first):
        """One pass over validated X and y (standardised, or 0/1), continuing the model and the
        optimiser's state (the first call builds them). No holdout and no early stopping: a
        caller that streams batches holds out its own rows. Returns self."""
        if first:
            self.model_ = self._model(max(X.shape[1], 1), int(p["random_state"].randint(0, 2**31 - 1)), p)
            self.n_epochs_ = 0
        else:                                            # (after fit, too: it continues that model)
            self._same_model(p, "partial_fit", "fit anew with fit, or on a clone")
        self.n_batches_seen_ = getattr(self, "n_batches_seen_", 0) if not first else 0
        self.optimizer_ = self._optimizer(p, first)
        data = self._rows(X, y, weight)
        seen = self.model_.label_range
        hist = fit_model(self.model_, data, optimizer=self.optimizer_, batch_size=min(p["batch_size"], len(data)),
                         epochs=1, early_stop=False, log=None,
                         seed=self.model_.config["seed"] + 2 + self.n_batches_seen_)
        lo, hi = self.model_.label_range or (None, None)
        if seen is not None and lo is not None:          # the range of every batch's labels, not the last one's
            self.model_.label_range = (min(seen[0], lo), max(seen[1], hi))
        self.n_batches_seen_ += 1
        if hist.diverged or hist.interrupted:
            raise E.RunFailed(f"partial_fit: {hist.stopped}; the model is as it was before this call"
                              + ("; try a smaller lr" if hist.diverged else ""))
        self.history_ = self._in_units(hist)
        return self

    def _holdout(self, data, p):
        """The training target: all rows, or with early_stopping a Split of training rows and
        held-out validation rows (at least one of each). Returns (target, training rows)."""
        n = len(data)
        if not p["early_stopping"]:
            return data, n
        n_valid = max(1, int(round(p["validation_fraction"] * n)))
        if n - n_valid < 1:
            raise E.OptionError(f"early_stopping with validation_fraction={p['validation_fraction']:g} holds out "
                                f"{n_valid} of the {n} rows of X, leaving none to train on; give more rows or a "
                                "smaller validation_fraction")
        perm = np.random.default_rng(self.model_.config["seed"]).permutation(n)
        valid = data.take(perm[:n_valid])
        return Split(data.take(perm[n_valid:]), valid, valid), n - n_valid

    def _in_units(self, hist):
        """The History as the user reads it: train (and valid, with early_stopping) per epoch, in y's
        units for regressors; no test column (the estimators have no test set: it was the holdout again),
        and no metric that is undefined (a regressor's AUC)."""
        out = History(hist.metric, best_epoch=hist.best_epoch, stopped=hist.stopped, outcome=hist.outcome)
        out.epochs = [self._record_in_units(rec) for rec in hist.epochs]
        return out

    def _record_in_units(self, rec):
        """One epoch's record without the test columns and undefined metrics, in y's units."""
        scale = self._metric_scale()
        r = {k: v for k, v in rec.items() if k not in ("test", "test_auc") and v is not None}
        for key in ("train", "valid"):
            if key in r:
                r[key] = r[key] * scale
        return r

    def _metric_scale(self):
        return 1.0

    def _epoch_line(self, rec, best, m):
        """One verbose line: the epoch, the training loss and, with a holdout, the validation metric ``m``."""
        line = f"{type(self).__name__} epoch {rec['epoch']:3d}  train {m} {rec['train']:.6g}"
        if "valid" in rec:
            line += f"  validation {m} {rec['valid']:.6g}" + ("  (best so far: kept)" if best else "")
        return line + f"  [{rec['seconds']:.2f} s]"

    # ------------------------------------------------------------ prediction
    def _output(self, scores):
        """Model outputs to what ``_scores`` returns (regressors: y's units)."""
        return scores

    def _scores(self, X):
        """The one prediction path: validated X, the model's outputs, never NaN or inf."""
        check_is_fitted(self, "model_")
        X = self._validate(X)
        with np.errstate(over="ignore", invalid="ignore"):
            out = self._output(predictions(self.model_, self._rows(X), scores=True).astype(np.float64))
        return _finite_predictions(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_PARAMS_DOC = """
    Parameters
    ----------
    k : embedding size (the paper's hidden factor)
    keep_prob : keep probability of dropout on the Bi-Interaction layer (FM), or one per hidden
        layer and the last for the Bi-Interaction layer (NFM), as the original code
    batch_norm : batch normalisation on f_BI (and the hidden layers, NFM)
    l2 : lambda of the L2 term on the embedding rows of each batch
    optimizer : 'adagrad', 'adam', 'sgd' or 'momentum' (or an ``nfm_numpy.optim.Optimizer``)
    lr : learning rate
    batch_size : rows a step (at most the number of training rows)
    epochs : passes over the data (the cap with ``early_stopping`` or ``eval_set``)
    early_stopping, validation_fraction, patience : hold out validation_fraction (in (0, 1)) of
        the rows; stop when the metric on them rose ``patience`` epochs in a row; keep the best
        epoch's weights
    dtype : 'float32' (speed) or 'float64'
    random_state : int, RandomState or None: initial weights, dropout and shuffling
    warm_start : continue from the fitted weights and optimiser state
    verbose : print one line per epoch: the training loss and, with early_stopping, the
        validation metric (rmse in y's units for regressors, logloss for classifiers)
    backend : 'numpy' or 'cupy'

    Attributes
    ----------
    model_ : the fitted ``FM`` or ``NFM``;  optimizer_ : its optimiser (with its state)
    history_ : a ``train.History``: per epoch ``train`` and, with early_stopping or eval_set,
        ``valid`` (regressors: in y's units); ``history_.best_epoch`` is the epoch kept
    n_epochs_ : epochs trained, over all warm-started fits
"""


class _FMParams:
    def __init__(self, k=16, keep_prob=1.0, batch_norm=False, l2=0.0, optimizer="adagrad", lr=0.05,
                 batch_size=128, epochs=50, early_stopping=False, validation_fraction=0.1, patience=4,
                 dtype="float32", random_state=None, warm_start=False, verbose=0, backend="numpy"):
        self.k, self.keep_prob, self.batch_norm, self.l2 = k, keep_prob, batch_norm, l2
        self.optimizer, self.lr, self.batch_size, self.epochs = optimizer, lr, batch_size, epochs
        self.early_stopping, self.validation_fraction, self.patience = early_stopping, validation_fraction, patience
        self.dtype, self.random_state, self.warm_start = dtype, random_state, warm_start
        self.verbose, self.backend = verbose, backend


class _NFMParams:
    def __init__(self, k=16, layers=(32,), keep_prob=(0.8, 0.5), batch_norm=True, activation="relu", l2=0.0,
                 optimizer="adagrad", lr=0.05, batch_size=128, epochs=50, early_stopping=False,
                 validation_fraction=0.1, patience=4, dtype="float32", random_state=None, warm_start=False,
                 verbose=0, backend="numpy"):
        _FMParams.__init__(self, k, keep_prob, batch_norm, l2, optimizer, lr, batch_size, epochs, early_stopping,
                           validation_fraction, patience, dtype, random_state, warm_start, verbose, backend)
        self.layers, self.activation = layers, activation


class FMRegressor(_FMParams, RegressorMixin, _Base):
    __doc__ = "Factorization machine for regression (square loss; y standardised for training)." + _PARAMS_DOC
    _kind = "fm"

    @_named
    @_all_or_nothing
    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Fit on X (n_samples, n_features), sparse or dense, and y (n_samples,). ``eval_set``:
        (X_val, y_val) or [(X_val, y_val)], validation rows for early stopping (the best epoch's
        weights are kept; no rows of X are held out). Returns self."""
        p = self._check_params()
        first = not self._continues(p)
        X, y = self._validate(X, y, reset=first, y_numeric=True)
        w = _weights(sample_weight, X.shape[0], p["dtype"])
        y = _numbers(y)
        ev = self._eval_rows(eval_set, p["dtype"])
        if ev is not None:
            try:
                yv = _numbers(ev[1], "y_val")
                _check_finite(yv, "y_val")
            except E.InputError as e:
                raise type(e)(f"eval_set: {e}") from None
        if first:
            self.y_mean_, self.y_scale_ = _standardisation(y, w)
        valid = None if ev is None else (ev[0], self._standardised(yv, p["dtype"], "eval_set: y_val"))
        return self._fit(X, self._standardised(y, p["dtype"]), w, p, first, valid)

    @_named
    @_all_or_nothing
    def partial_fit(self, X, y, sample_weight=None):
        """One pass over a batch of rows (scikit-learn's incremental learning: call it once per batch,
        for data that does not fit in memory, e.g. under dask-ml's ``Incremental``). The first call
        builds the model and fixes how y is standardised, from that batch's mean and spread; later
        calls continue the model and the optimiser. Returns self."""
        p = self._check_params()
        first = not hasattr(self, "model_")
        X, y = self._validate(X, y, reset=first, y_numeric=True)
        w = _weights(sample_weight, X.shape[0], p["dtype"])
        y = _numbers(y)
        if first:
            self.y_mean_, self.y_scale_ = _standardisation(y, w)
        return self._partial_fit(X, self._standardised(y, p["dtype"]), w, p, first)

    def _standardised(self, y, dtype, name="y"):
        """(y - y_mean_) / y_scale_, which must fit the model's dtype (it can only fail to when
        tiny weights make the spread of the counted rows much smaller than that of the others)."""
        z = (y - self.y_mean_) / self.y_scale_
        big = np.finfo(dtype).max
        if (np.abs(z) > big).any():
            i = int(np.argmax(np.abs(z) > big))
            raise E.DataError(f"{name}[{i}] = {y[i]:g} lies {abs(z[i]):.3g} standard deviations from the mean of y, "
                              f"beyond {np.dtype(dtype).name}; use dtype='float64'")
        return z

    def _metric_scale(self):
        return self.y_scale_

    def _output(self, scores):
        return scores * self.y_scale_ + self.y_mean_

    @_named
    def predict(self, X):
        """Predictions in the units of y, (n_samples,)."""
        return self._scores(X)


def _standardisation(y, w):
    """(mean, scale) of y (weighted by ``w``); the scale is the standard deviation, 1 if it is 0.
    A y whose mean or spread overflows float64 (y = [1e308, -1e308]) cannot be standardised: an
    error naming its largest value, never y_scale_ = inf and NaN predictions."""
    big = float(np.max(np.abs(y))) if y.size else 0.0
    big = big if big > 0 else 1.0          # compute on y / max|y|: the squares of y = 5e200 would overflow
    with np.errstate(over="ignore", invalid="ignore"):
        z = y / big
        mean_z = float(np.average(z, weights=w))
        mean, sd = big * mean_z, big * float(np.sqrt(np.average((z - mean_z) ** 2, weights=w)))
    if not (math.isfinite(mean) and math.isfinite(sd)):
        i = int(np.argmax(np.abs(y)))
        raise E.DataError(f"y ranges from {y.min():g} to {y.max():g}: its mean or standard deviation overflows "
                          f"float64 (the largest is y[{i}] = {y[i]:g}); rescale y (e.g. divide it by 1e300)")
    return mean, sd if sd > 0 else 1.0


class NFMRegressor(_NFMParams, FMRegressor):
    __doc__ = ("Neural factorization machine for regression (square loss; y standardised for training)."
               + _PARAMS_DOC + "    layers : hidden layer sizes; activation : relu, sigmoid, tanh or identity\n")
    _kind = "nfm"


class FMClassifier(_FMParams, ClassifierMixin, _Base):
    __doc__ = ("Factorization machine for binary classification (log loss). ``classes_``: the two labels; "
               "the second is the positive class." + _PARAMS_DOC)
    _kind = "fm"
    _loss = "log"

    @_named
    @_all_or_nothing
    def fit(self, X, y, sample_weight=None, eval_set=None):
        """Fit on X (n_samples, n_features), sparse or dense, and y (n_samples,) of two classes.
        ``eval_set``: (X_val, y_val) or [(X_val, y_val)], validation rows for early stopping (the best
        epoch's weights are kept; no rows of X are held out); y_val holds classes of y."""
        p = self._check_params()
        first = not self._continues(p)
        X, y = self._validate(X, y, reset=first)
        w = _weights(sample_weight, X.shape[0], p["dtype"])
        classes = self._classes(y)
        if not first and not np.array_equal(classes, self.classes_):
            raise E.DataError(f"warm_start: the classes changed from {self.classes_.tolist()} to {classes.tolist()}")
        ev = self._eval_rows(eval_set, p["dtype"])
        valid = None if ev is None else (ev[0], _known_classes(ev[1], classes))
        self.classes_ = classes
        return self._fit(X, (y == classes[1]).astype(np.float64), w, p, first, valid)

    @_named
    @_all_or_nothing
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass over a batch of rows (scikit-learn's incremental learning: once per batch, e.g. under
        dask-ml's ``Incremental``). ``classes``, the two labels, is needed on the first call (a batch may
        hold one class only) and, if given later, must be the same. Returns self."""
        p = self._check_params()
        first = not hasattr(self, "model_")
        X, y = self._validate(X, y, reset=first)
        w = _weights(sample_weight, X.shape[0], p["dtype"])
        if classes is None and first:
            raise E.OptionError("partial_fit needs classes=[the two labels] on its first call (a batch may hold "
                                "only one of them)")
        if classes is not None:
            given = self._classes(np.asarray(classes))
            if not first and not np.array_equal(given, self.classes_):
                raise E.DataError(f"partial_fit: classes {given.tolist()} differ from those of the first call, "
                                  f"{self.classes_.tolist()}")
            self.classes_ = given
        return self._partial_fit(X, _known_classes(np.asarray(y), self.classes_, "y", "given"), w, p, first)

    def _classes(self, y):
        """The two classes of y, sorted; one class or more than two is an error that says so."""
        try:
            check_classification_targets(y)
            kind = type_of_target(y, input_name="y", raise_unknown=True)
            classes = np.unique(y)
        except TypeError as e:          # labels that cannot be ordered, e.g. strings and None
            raise E.DataError(f"y's labels cannot be sorted into classes ({e}); give labels of one type") from None
        except ValueError as e:
            raise E.DataError(_one_line(str(e))) from None
        shown = ", ".join(map(str, classes[:5].tolist())) + (", ..." if classes.size > 5 else "")
        if classes.size == 1:
            raise E.DataError(f"y holds 1 class ({shown}); a binary classifier needs exactly 2 classes")
        if kind != "binary" or classes.size != 2:
            raise E.DataError(f"Only binary classification is supported. The type of the target is {kind} "
                              f"({classes.size} classes: {shown}); y needs exactly 2 classes")
        return classes

    @_named
    def decision_function(self, X):
        """The logit of the positive class (classes_[1]), (n_samples,)."""
        return self._scores(X)

    @_named
    def predict_proba(self, X):
        """Probabilities of classes_[0] and classes_[1], (n_samples, 2)."""
        p = 0.5 * (1.0 + np.tanh(0.5 * self._scores(X)))
        return np.column_stack([1.0 - p, p])

    @_named
    def predict(self, X):
        """The predicted class of each row, (n_samples,)."""
        positive = self._scores(X) > 0                # first: it checks that the estimator is fitted
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def _known_classes(y_val, classes, name="eval_set: y_val", whose="of y"):
    """y_val as 0/1 (1: classes[1]); a label that is not one of y's two classes is named."""
    try:
        known = np.isin(y_val, classes)
    except TypeError:
        known = np.array([any(v == c for c in classes.tolist()) for v in y_val.tolist()], dtype=bool)
    if y_val.dtype.kind == "f":
        known &= np.isfinite(y_val)
    if not known.all():
        i = int(np.argmin(known))
        raise E.DataError(f"{name}[{i}] = {y_val.tolist()[i]!r} is not one of the classes {whose} "
                          f"({', '.join(map(repr, classes.tolist()))})")
    return (y_val == classes[1]).astype(np.float64)


class NFMClassifier(_NFMParams, FMClassifier):
    __doc__ = ("Neural factorization machine for binary classification (log loss)." + _PARAMS_DOC
               + "    layers : hidden layer sizes; activation : relu, sigmoid, tanh or identity\n")
    _kind = "nfm"


# ------------------------------------------------------------------ the Bayesian FM (Gibbs sampling)
def _keep(value):
    """``keep``: samples kept for prediction, at least one (a BayesFM that kept none cannot predict)."""
    return E.integer(value, "keep", 1)


def _prior(value):
    if value is not None and not isinstance(value, bayes.Prior):
        raise E.OptionTypeError(f"prior must be None or an nfm_numpy.bayes.Prior, got {value!r}")
    return bayes.check_prior(value)


def _groups(value, n):
    """``groups``: None, or one prior group id (an int >= 0) per column of X."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict, set)) or sp.issparse(value):
        raise E.OptionTypeError(f"groups must be None or one integer group id per column of X, got {value!r}")
    try:
        g = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise E.OptionTypeError(f"groups must be integer group ids ({e})") from None
    if g.shape != (n,):
        raise E.OptionError(f"groups must hold one group id per column of X ({n}), got shape {g.shape}")
    if g.dtype.kind not in "iu":
        raise E.OptionTypeError(f"groups must hold integer group ids, got dtype {g.dtype}")
    if g.size and g.min() < 0:
        i = int(np.argmin(g))
        raise E.OptionError(f"groups[{i}] = {int(g[i])}: group ids must be >= 0")
    return g.astype(np.int64)


_BAYES_DOC = """
    Parameters
    ----------
    k : factors per feature (the FM's embedding size)
    n_samples : Gibbs sweeps after burn-in; each is a sample of the posterior
    burn_in : sweeps before them, discarded (the chain moving from its start to the posterior)
    keep : samples of (w0, w, V) kept for prediction, evenly spaced over the n_samples, the last
        included (at most n_samples are kept; predictions average over them)
    groups : None (one prior group) or one int per column of X: the prior group of each feature
        (libFM's per-field priors; e.g. one group per one-hot field)
    prior : None (libFM's hyper-priors) or an ``nfm_numpy.bayes.Prior``
    init_std : V starts N(0, init_std^2)
    random_state : int, RandomState or None: the seed of the chain
    verbose : print one line per sweep

    Attributes
    ----------
    model_ : the fitted ``bayes.BayesFM`` (its kept samples; ``checkpoint.save`` writes it)
    trace_ : one dict per sweep (``sweep``, ``alpha``, ``train_rmse`` of that sweep's sample)
"""


class _BayesBase(BaseEstimator):
    """Shared code of the Bayesian FM estimators: ``bayes.fit`` on X's padded rows. No learning
    rate, no regularisation and no epochs to tune: the priors' hyper-parameters are sampled."""

    _task = "regression"

    def __init__(self, k=8, n_samples=100, burn_in=20, keep=20, groups=None, prior=None, init_std=0.1,
                 random_state=None, verbose=0):
        self.k, self.n_samples, self.burn_in, self.keep = k, n_samples, burn_in, keep
        self.groups, self.prior, self.init_std = groups, prior, init_std
        self.random_state, self.verbose = random_state, verbose

    def _check_params(self):
        """Every hyper-parameter but groups (checked against X), checked and converted; a dict."""
        return dict(k=E.integer(self.k, "k", 1), n_samples=E.integer(self.n_samples, "n_samples", 1),
                    burn_in=E.integer(self.burn_in, "burn_in", 0), keep=_keep(self.keep), prior=_prior(self.prior),
                    init_std=E.real(self.init_std, "init_std", 0.0), random_state=_random_state(self.random_state),
                    verbose=_verbose(self.verbose))

    def _validate(self, X, y="no_validation", reset=False, **kw):
        """As the other estimators validate X (and y); the sampler computes in float64."""
        return _validated(self, X, y, reset, lambda: np.float64, **kw)

    @staticmethod
    def _padded(X):
        """Validated X (float64, dense or CSR) as padded rows (idx, val) (zeros dropped, duplicates summed)."""
        batch = from_csr(X if sp.issparse(X) else sp.csr_array(X), None, np.float64)
        return batch.idx, batch.val

    def _sample(self, X, target, p, scale=1.0):
        """Run the chain on validated X and the training ``target``; sets model_ and trace_. Returns self."""
        groups = _groups(self.groups, X.shape[1])
        seed = int(p["random_state"].randint(0, 2**31 - 1))
        idx, val = self._padded(X)
        name, total, metric = type(self).__name__, p["burn_in"] + p["n_samples"], (
            "train rmse" if self._task == "regression" else "latent rmse")

        def line(rec):                          # one verbose line per sweep, in y's units for the regressor
            stage = "burn-in" if rec["sweep"] <= p["burn_in"] else "sample"
            print(f"{name} sweep {rec['sweep']:4d}/{total} ({stage})  {metric} {rec['train_rmse'] * scale:.6g}",
                  flush=True)
        model = bayes.fit((idx, val, target), n_features=max(X.shape[1], 1), k=p["k"], n_samples=p["n_samples"],
                          burn_in=p["burn_in"], task=self._task, groups=groups, keep=p["keep"], prior=p["prior"],
                          init_std=p["init_std"], seed=seed, on_sweep=line if p["verbose"] else None)
        vars(model).pop("sampler", None)        # the sampler holds the training rows: not part of the model
        self.model_, self.trace_ = model, model.trace
        return self

    def _samples_of(self, X):
        """Validated padded rows of X and the fitted model (the one entry of every predict path)."""
        check_is_fitted(self, "model_")
        return self._padded(self._validate(X))

    @staticmethod
    def _finite(out):
        return _finite_predictions(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class BayesFMRegressor(RegressorMixin, _BayesBase):
    __doc__ = ("Bayesian factorization machine for regression, by Gibbs sampling (``nfm_numpy.bayes``: Gaussian "
               "noise, Normal-Gamma hyper-priors); the prediction is the posterior mean over the kept samples. "
               "y is standardised for training, and predictions are in y's units." + _BAYES_DOC
               + "    y_mean_, y_scale_ : the standardisation of y\n")

    @_named
    @_all_or_nothing
    def fit(self, X, y):
        """Sample the posterior given X (n_samples, n_features), sparse or dense, and y (n_samples,). Returns self."""
        p = self._check_params()
        X, y = self._validate(X, y, reset=True, y_numeric=True)
        y = _numbers(y)
        mean, scale = _standardisation(y, None)
        self._sample(X, (y - mean) / scale, p, scale)
        self.y_mean_, self.y_scale_ = mean, scale
        return self

    @_named
    def predict(self, X):
        """The posterior mean of the prediction, in y's units, (n_samples,)."""
        idx, val = self._samples_of(X)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._finite(self.model_.predict(idx, val) * self.y_scale_ + self.y_mean_)


class BayesFMClassifier(ClassifierMixin, _BayesBase):
    __doc__ = ("Bayesian factorization machine for binary classification, by Gibbs sampling: the probit link "
               "with latent variables (``nfm_numpy.bayes``). ``classes_``: the two labels; the second is the "
               "positive class; ``predict_proba`` is the posterior mean of Phi(yhat)." + _BAYES_DOC)
    _task = "probit"
    _classes = FMClassifier._classes

    @_named
    @_all_or_nothing
    def fit(self, X, y):
        """Sample the posterior given X (n_samples, n_features), sparse or dense, and y (n_samples,) of two
        classes. Returns self."""
        p = self._check_params()
        X, y = self._validate(X, y, reset=True)
        classes = self._classes(y)
        self._sample(X, (y == classes[1]).astype(np.float64), p)
        self.classes_ = classes
        return self

    def _log_proba(self, X):
        """log P(classes_[0]) and log P(classes_[1]) (n_samples,) each: the logs of the posterior means of
        Phi(-yhat) and Phi(yhat) over the kept samples, summed in log space (no 1 - p that rounds to 0)."""
        idx, val = self._samples_of(X)
        m = self.model_
        lo = hi = None
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(m.n_kept):
                yhat = bayes.predict_fm(idx, val, m.w0[t], m.w[t, :], m.V[t, ...])
                a, b = special.log_ndtr(-yhat), special.log_ndtr(yhat)
                lo, hi = (a, b) if lo is None else (np.logaddexp(lo, a), np.logaddexp(hi, b))
            log_n = math.log(m.n_kept)
            lo, hi = lo - log_n, hi - log_n
            self._finite(hi - lo)
        return lo, hi

    @_named
    def decision_function(self, X):
        """The logit of the posterior probability of the positive class (classes_[1]), (n_samples,)."""
        lo, hi = self._log_proba(X)
        return hi - lo

    @_named
    def predict_proba(self, X):
        """Posterior probabilities of classes_[0] and classes_[1], (n_samples, 2)."""
        lo, hi = self._log_proba(X)
        return np.column_stack([np.exp(lo), np.exp(hi)])

    @_named
    def predict(self, X):
        """The more probable class of each row, (n_samples,)."""
        lo, hi = self._log_proba(X)
        return self.classes_[(hi > lo).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


# ------------------------------------------------------------------ the feature encoder as a transformer
def _columns_of(X, what="X"):
    """X as a mapping of column name -> 1-D array, as ``features.Encoder`` reads it: a pandas DataFrame
    (its columns by name; pandas is not imported), a dict of columns, or a ``features.Table``."""
    if isinstance(X, F.Table):
        return X
    if hasattr(X, "columns") and hasattr(X, "iloc"):                    # a pandas DataFrame
        names = [str(c) for c in X.columns]
        dupes = sorted({c for c in names if names.count(c) > 1})
        if dupes:
            raise E.DataError(f"{what} has two columns named {dupes[0]!r}")
        return {str(c): X.iloc[:, j].to_numpy() for j, c in enumerate(X.columns)}
    if isinstance(X, dict) or (hasattr(X, "items") and hasattr(X, "keys") and not sp.issparse(X)):
        return dict(X.items())
    raise E.OptionTypeError(f"{what} must be a pandas DataFrame or a dict of columns (name -> 1-D array): the "
                            f"encoder reads columns by name; got {type(X).__name__}")


def _bucket_names(edges):
    """Names of quantile buckets: [lo, hi), the first from -inf and the last to inf."""
    bounds = [-np.inf] + [float(e) for e in edges] + [np.inf]
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(bounds[:-1], bounds[1:])]


class FeatureEncoder(TransformerMixin, BaseEstimator):
    """The CSV route's feature encoder (``features.Encoder``) as a scikit-learn transformer.

    ``fit`` on a pandas DataFrame or a dict of columns (name -> 1-D array) learns each field as
    the command line does from a CSV file; ``transform`` returns a ``scipy.sparse.csr_matrix``
    (n_rows, n_features) of the x values, each field with its out-of-vocabulary column first, so
    ``make_pipeline(FeatureEncoder(categorical=["user", "item"], numeric=["age"]), NFMRegressor())``
    trains on what ``train --csv`` trains on. Encoding is ``features.Encoder``'s, not another.

    Parameters
    ----------
    categorical : column names, one feature per value seen in ``fit`` (an empty cell is a value of
        its own); ``"*"`` for every column no other parameter names. None: none, and then every
        column must be named (a column that no parameter names is an error, never a field made
        silently; ``ignore`` leaves some out)
    numeric : column names (x = the value standardised with the fitted mean and deviation; a
        missing value is x = 0), or a dict name -> number of quantile buckets (0: standardised)
    multi_valued : dict name -> separator (``{"genres": "|"}``): one feature per value, x = 1/m
    ignore : column names left out
    min_count : values seen fewer times in ``fit`` go to their field's OOV column
    missing : texts that mean "no value" in numeric columns
    unseen : at ``transform``, values never seen in ``fit``: 'oov' (their field's OOV column),
        'ignore' (x = 0) or 'error'

    Attributes
    ----------
    encoder_ : the fitted ``features.Encoder`` (print it for the table of fields)
    n_features_in_, feature_names_in_ : the columns ``fit`` saw
    notes_ : lines worth reading (near-unique categorical columns that were named explicitly, kept
        as asked); ``fit`` also gives each as a UserWarning
    """

    def __init__(self, categorical=None, numeric=None, multi_valued=None, ignore=None, min_count=1,
                 missing=F.MISSING, unseen="oov"):
        self.categorical, self.numeric, self.multi_valued = categorical, numeric, multi_valued
        self.ignore, self.min_count, self.missing, self.unseen = ignore, min_count, missing, unseen

    @_named
    def fit(self, X, y=None):
        """Learn the fields from the rows of X (a DataFrame or a dict of columns); y is ignored."""
        E.choice(self.unseen, "unseen", F.CSV_UNSEEN)
        enc = F.Encoder(self.categorical, self.numeric, self.multi_valued, None,
                        () if self.ignore is None else self.ignore, self.min_count, self.missing)
        table = F.as_table(_columns_of(X), "X")
        enc.fit(table)
        self.encoder_, self.notes_ = enc, list(enc.notes)
        for note in self.notes_:           # what the command line prints: near-unique columns named explicitly
            warnings.warn(f"{type(self).__name__}: {note}", UserWarning, stacklevel=3)
        self.feature_names_in_ = np.asarray(table.names, dtype=object)
        self.n_features_in_ = len(table.names)
        return self

    @_named
    def transform(self, X):
        """X's rows as a CSR matrix (n_rows, n_features) of x values, in the fitted feature space."""
        check_is_fitted(self, "encoder_")
        table = F.as_table(_columns_of(X), "X")
        enc = self.encoder_
        idx, val, _, _ = enc.transform(table, E.choice(self.unseen, "unseen", F.CSV_UNSEEN), labels=False)
        bad = ~np.isfinite(val)
        if bad.any():                       # a numeric value beyond float64 once standardised
            r = table.first(bad.any(axis=1))
            c = int(np.flatnonzero(bad[r])[0])
            name = next((f.name for f in enc.fields if f.offset == int(idx[r, c])), None)
            raise E.DataError(f"{table.where(r, name)}: the standardised value is {val[r, c]} (the value is too "
                              "large for this column's scale)")
        n, width = idx.shape
        out = sp.csr_matrix((val.ravel(), (np.repeat(np.arange(n), width), idx.ravel())),
                            shape=(n, enc.n_features), dtype=np.float64)      # duplicates summed
        out.eliminate_zeros()                                                   # padding (id 0, x = 0)
        out.sort_indices()
        return out

    @_named
    def get_feature_names_out(self, input_features=None):
        """One name per output column: 'field=value', 'field=<OOV>', 'field' (numeric), or
        'field=[lo, hi)' (a quantile bucket)."""
        check_is_fitted(self, "encoder_")
        if input_features is not None and [str(c) for c in input_features] != list(self.feature_names_in_):
            raise E.DataError(f"input_features {list(input_features)[:5]} are not the columns fit saw "
                              f"({list(self.feature_names_in_)[:5]})")
        names = []
        for f in self.encoder_.fields:
            if f.kind == "numeric":
                names.append(f.name)
                continue
            values = _bucket_names(f.edges) if f.kind == "buckets" else f.vocab.tolist()
            names += [f"{f.name}=<OOV>"] + [f"{f.name}={v}" for v in values]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = tags.input_tags.string = tags.input_tags.dict = True
        tags.input_tags.allow_nan = True
        return tags


__all__ = ["FMRegressor", "FMClassifier", "NFMRegressor", "NFMClassifier", "BayesFMRegressor", "BayesFMClassifier",
           "FeatureEncoder"]
