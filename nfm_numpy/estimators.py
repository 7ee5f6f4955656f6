"""scikit-learn estimators: ``FMRegressor``, ``FMClassifier``, ``NFMRegressor``, ``NFMClassifier``.

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
* ``warm_start=True`` continues from the fitted weights and optimiser state.
"""
from __future__ import annotations

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, check_random_state, validate_data
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("nfm_numpy.estimators needs scikit-learn (an optional extra): pip install scikit-learn, "
                      "or pip install 'nfm-numpy[sklearn]'") from e

import scipy.sparse as sp

from . import optim
from .data import Dataset, Split, from_csr
from .model import FM, NFM
from .train import fit as fit_model, predictions


class _Base(BaseEstimator):
    """Shared fitting code; subclasses set the model kind and the loss."""

    _kind = "nfm"
    _loss = "square"

    def _model(self, n_features, seed):
        common = dict(k=self.k, l2=self.l2, loss=self._loss, dtype=self.dtype, seed=seed, backend=self.backend)
        if self._kind == "fm":
            return FM(n_features, keep_prob=self.keep_prob, batch_norm=self.batch_norm, **common)
        return NFM(n_features, layers=self.layers, keep_prob=self.keep_prob, batch_norm=self.batch_norm,
                   activation=self.activation, **common)

    def _rows(self, X, y=None, sample_weight=None, reset=False):
        """Validated X (and y) as a ``Dataset`` of padded rows (zeros dropped, duplicates summed)."""
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=reset, ensure_min_samples=1)
        if not sp.issparse(X):
            X = sp.csr_array(X)
        batch = from_csr(X, y, np.dtype(self.dtype),
                         None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64))
        labels = batch.y if batch.y is not None else np.zeros(batch.idx.shape[0], dtype=self.dtype)
        return Dataset(batch.idx, batch.val, labels, max(X.shape[1], 1), "X", weight=batch.weight)

    def _fit(self, X, y, sample_weight):
        first = not (self.warm_start and hasattr(self, "model_"))
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        data = self._rows(X, y, sample_weight, reset=first)
        if first:
            rs = check_random_state(self.random_state)
            seed = int(rs.randint(0, 2**31 - 1))
            self.model_ = self._model(data.n_features, seed)
            self.optimizer_ = optim.make(self.optimizer, self.lr) if isinstance(self.optimizer, str) \
                else self.optimizer
            self.n_epochs_ = 0
        n = len(data)
        batch = min(self.batch_size, n)
        if self.early_stopping:
            n_valid = max(1, int(round(self.validation_fraction * n)))
            if n - n_valid < batch:
                batch = max(1, n - n_valid)
            perm = np.random.default_rng(self.model_.config["seed"]).permutation(n)
            train, valid = data.take(perm[n_valid:]), data.take(perm[:n_valid])
            target = Split(train, valid, valid)
        else:
            target = data
        hist = fit_model(self.model_, target, optimizer=self.optimizer_, batch_size=batch, epochs=self.epochs,
                         early_stop=bool(self.early_stopping), patience=self.patience, log=print if self.verbose
                         else None, seed=self.model_.config["seed"] + 2 + self.n_epochs_)
        if not hist.best_epoch:
            from .errors import RunFailed
            raise RunFailed(f"training failed: {hist.stopped}; try a smaller lr")
        self.history_ = hist
        self.n_epochs_ += len(hist.epochs)
        return self

    def _scores(self, X):
        check_is_fitted(self, "model_")
        return predictions(self.model_, self._rows(X), scores=True).astype(np.float64)

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
    epochs : passes over the data (the cap with ``early_stopping``)
    early_stopping, validation_fraction, patience : stop when the metric on the held-out
        rows rose ``patience`` epochs in a row; keep the best epoch's weights
    dtype : 'float32' (speed) or 'float64'
    random_state : int, RandomState or None: initial weights, dropout and shuffling
    warm_start : continue from the fitted weights and optimiser state
    verbose : print one line per epoch
    backend : 'numpy' or 'cupy'
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

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n_samples, n_features), sparse or dense, and y (n_samples,). Returns self."""
        first = not (self.warm_start and hasattr(self, "y_mean_"))
        X_checked, y = validate_data(self, X, y, accept_sparse="csr", y_numeric=True, reset=first)
        y = np.asarray(y, dtype=np.float64)
        if first:
            w = None if sample_weight is None else _check_sample_weight(sample_weight, X_checked)
            self.y_mean_ = float(np.average(y, weights=w))
            sd = float(np.sqrt(np.average((y - self.y_mean_) ** 2, weights=w)))
            self.y_scale_ = sd if sd > 0 else 1.0
        return self._fit(X, (y - self.y_mean_) / self.y_scale_, sample_weight)

    def predict(self, X):
        """Predictions in the units of y, (n_samples,)."""
        return self._scores(X) * self.y_scale_ + self.y_mean_


class NFMRegressor(_NFMParams, FMRegressor):
    __doc__ = ("Neural factorization machine for regression (square loss; y standardised for training)."
               + _PARAMS_DOC + "    layers : hidden layer sizes; activation : relu, sigmoid, tanh or identity\n")
    _kind = "nfm"


class FMClassifier(_FMParams, ClassifierMixin, _Base):
    __doc__ = ("Factorization machine for binary classification (log loss). ``classes_``: the two labels; "
               "the second is the positive class." + _PARAMS_DOC)
    _kind = "fm"
    _loss = "log"

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n_samples, n_features), sparse or dense, and y (n_samples,) of two classes."""
        X_checked, y_checked = validate_data(self, X, y, accept_sparse="csr", reset=not (
            self.warm_start and hasattr(self, "classes_")))
        check_classification_targets(y_checked)
        kind = type_of_target(y_checked, input_name="y", raise_unknown=True)
        classes = np.unique(y_checked)
        if kind != "binary" or classes.size != 2:
            raise ValueError(f"Only binary classification is supported. The type of the target is {kind} "
                             f"({classes.size} class{'es' if classes.size != 1 else ''}: {classes[:5].tolist()}); "
                             f"{type(self).__name__} needs y with exactly 2 classes")
        if self.warm_start and hasattr(self, "classes_") and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start: the classes changed from {self.classes_.tolist()} to {classes.tolist()}")
        self.classes_ = classes
        return self._fit(X, (y_checked == classes[1]).astype(np.float64), sample_weight)

    def decision_function(self, X):
        """The logit of the positive class (classes_[1]), (n_samples,)."""
        return self._scores(X)

    def predict_proba(self, X):
        """Probabilities of classes_[0] and classes_[1], (n_samples, 2)."""
        p = 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        """The predicted class of each row, (n_samples,)."""
        check_is_fitted(self, "model_")
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class NFMClassifier(_NFMParams, FMClassifier):
    __doc__ = ("Neural factorization machine for binary classification (log loss)." + _PARAMS_DOC
               + "    layers : hidden layer sizes; activation : relu, sigmoid, tanh or identity\n")
    _kind = "nfm"


__all__ = ["FMRegressor", "FMClassifier", "NFMRegressor", "NFMClassifier"]
