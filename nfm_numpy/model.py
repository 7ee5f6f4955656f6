r"""FM and NFM, wired from ``layers`` (no math of their own).

.. math::
    \hat y(x) = w_0 + \sum_i w_i x_i + z_L h, \qquad
    z_0 = \mathrm{dropout}(\mathrm{BN}(f_{BI}(V_x))), \qquad
    z_l = \mathrm{dropout}(\phi(\mathrm{BN}(z_{l-1} W_l + b_l)))

in the order of the original code (BN, then activation, then dropout). FM is
the case with no hidden layers and h fixed to ones: its output is
sum_c z_{0,c} over the k coordinates (``layers.fm_second_order_forward``).

Parameters live in ``model.params`` (name -> array), named after the paper:
``w0`` (), ``w`` (n,), ``V`` (n, k), ``W1`` (k, d1), ``b1`` (d1,), ..., ``h``
(d_L,), and batch-norm scale and shift ``gamma0``/``beta0`` (on f_BI) and
``gamma1``/``beta1``, ... (on hidden layer l). Batch-norm running averages
``mean0``/``var0``, ... live in ``model.state`` (not learned).
"""
from __future__ import annotations

import math

import numpy as np

from . import backend as B, errors as E, layers as L
from .data import Batch, validate
from .losses import check_loss, l2_loss, loss_forward

DTYPES = ("float32", "float64")
IMPLS = ("sparse", "gather")
SEED_MAX = 2**63 - 8      # the model draws dropout with seed + 1 and fit shuffles with seed + 2


class NFM:
    """Neural Factorization Machine.

    Parameters
    ----------
    n_features : int        number of distinct feature ids n
    k : int                 embedding size (the paper's hidden factor)
    layers : sequence of int   hidden layer sizes; () is NFM-0
    keep_prob : sequence of float   keep probability per hidden layer, and the
        **last** one for the Bi-Interaction layer (as the original's
        ``--keep_prob``): len(layers) + 1 values, each in (0, 1]
    batch_norm : bool       BN on the Bi-Interaction and on each hidden layer
    activation : str        relu, sigmoid, tanh or identity
    loss : str              square (regression, labels -1/1 on Frappe) or
        log (binary, labels 0/1; predictions are probabilities)
    l2 : float              lambda of lambda/2 ||V_u||^2 on the embedding rows
        of each batch (see ``losses``)
    dtype : str             float32 (default, speed) or float64 (checks)
    seed : int              initial weights (drawn on the host) and dropout
    backend : str or module numpy (default) or cupy
    device : Array-API device for namespaces that have several (tests)
    impl : str              sparse (default: (B, U) sparse products) or gather
        (the textbook (B, F, k) form); both give the same numbers
    """

    kind = "nfm"

    def __init__(self, n_features, k=64, layers=(64,), keep_prob=(0.8, 0.5), batch_norm=True,
                 activation="relu", loss="square", l2=0.0, dtype="float32", seed=2016,
                 backend="numpy", device=None, impl="sparse", init_std=0.01):
        layers = E.int_list(layers, "layers", 1)
        keep_prob = E.float_list(keep_prob, "keep_prob", E.probability)
        if len(keep_prob) != len(layers) + 1:
            raise E.OptionError(f"keep_prob needs {len(layers) + 1} values (one per hidden layer, the last for "
                                f"the Bi-Interaction layer), got {len(keep_prob)}: {keep_prob}")
        self.config = dict(kind=self.kind, n_features=E.integer(n_features, "n_features", 1),
                           k=E.integer(k, "k", 1), layers=layers, keep_prob=keep_prob,
                           batch_norm=E.flag(batch_norm, "batch_norm"),
                           activation=L.check_activation(activation), loss=check_loss(loss),
                           l2=E.real(l2, "l2", 0.0), dtype=E.choice(dtype, "dtype", DTYPES),
                           seed=E.integer(seed, "seed", 0, SEED_MAX), impl=E.choice(impl, "impl", IMPLS),
                           init_std=E.real(init_std, "init_std", 0.0, lo_open=True))
        self._check_size()
        with np.errstate(over="ignore"):                # a huge init_std: refused just below, by name
            self.params, self.state = self._init_host(np.random.default_rng(seed), np.dtype(dtype))
        if not all(np.all(np.isfinite(a)) for a in self.params.values()):
            raise E.OptionError(f"init_std {init_std:g} gives non-finite initial weights")
        self.label_range = None          # (lo, hi) of the training labels, set by train.fit; RMSE clips to it
        self.xp, self.device = np, None
        self.to(backend, device)

    # ------------------------------------------------------------ construction
    def _check_size(self):
        """Refuse, before allocating anything, a model that cannot fit in this machine's memory:
        the initial draw is float64, and training holds each parameter about five times (weights,
        gradient, optimiser state, the best epoch's copy, a copy while moving backends)."""
        c = self.config
        sizes = [c["k"]] + c["layers"]
        count = c["n_features"] * (c["k"] + 1) + sum(a * b + 3 * b for a, b in zip(sizes[:-1], sizes[1:]))
        need = count * (8 + 5 * np.dtype(c["dtype"]).itemsize)
        total = B.host_memory()
        if total is not None and need > total:
            raise E.OptionError(
                f"the model is too large for this machine: {count:,} parameters (n_features {c['n_features']:,} x "
                f"(k {c['k']:,} + 1), layers {c['layers']}) need about {need / 2**30:,.1f} GiB to train, the machine "
                f"has {total / 2**30:.1f} GiB; lower k (--hidden-factor) or the layer sizes")

    def _init_host(self, rng, dtype):
        """Initial weights as the original: V ~ N(0, init_std), w = w0 = 0, hidden
        weights and biases ~ N(0, sqrt(2 / (fan_in + fan_out))), h ~ N(0, sqrt(2 / (d_L + 1)))
        (ones for NFM-0). Drawn on the host so one seed gives one set of weights on
        every backend."""
        c = self.config
        n, k, layers = c["n_features"], c["k"], c["layers"]
        p = {"w0": np.zeros((), dtype), "w": np.zeros(n, dtype),
             "V": rng.normal(0.0, c["init_std"], (n, k)).astype(dtype)}
        s = {}
        if c["batch_norm"]:
            p["gamma0"], p["beta0"] = np.ones(k, dtype), np.zeros(k, dtype)
            s["mean0"], s["var0"] = np.zeros(k, dtype), np.ones(k, dtype)
        d_in = k
        for l, d in enumerate(layers, start=1):
            std = math.sqrt(2.0 / (d_in + d))
            p[f"W{l}"] = rng.normal(0.0, std, (d_in, d)).astype(dtype)
            p[f"b{l}"] = rng.normal(0.0, std, d).astype(dtype)
            if c["batch_norm"]:
                p[f"gamma{l}"], p[f"beta{l}"] = np.ones(d, dtype), np.zeros(d, dtype)
                s[f"mean{l}"], s[f"var{l}"] = np.zeros(d, dtype), np.ones(d, dtype)
            d_in = d
        if self.kind == "nfm":
            p["h"] = (rng.normal(0.0, math.sqrt(2.0 / (d_in + 1)), d_in).astype(dtype) if layers
                      else np.ones(k, dtype))
        return p, s

    def __getstate__(self):
        """For pickle (scikit-learn sends estimators to worker processes): host copies of the
        arrays, the backend's name instead of the module, and where dropout is drawn on the host
        the generator's state, so that a copy continues training exactly as the original would
        (a GPU generator restarts from the seed)."""
        state = dict(self.__dict__)
        state["params"] = {n: B.to_numpy(a) for n, a in self.params.items()}
        state["state"] = {n: B.to_numpy(a) for n, a in self.state.items()}
        state["xp"], state["device"] = self.xp.__name__, None
        gen = self.rng._gen
        state["rng_state"] = gen.bit_generator.state if isinstance(gen, np.random.Generator) else None
        del state["rng"], state["dtype"]
        return state

    def __setstate__(self, state):
        backend = state.pop("xp")
        rng_state = state.pop("rng_state", None)
        self.__dict__.update(state)
        self.xp = np
        try:
            self.to(backend if backend in ("numpy", "cupy") else "numpy")
        except E.InputError:            # pickled on a GPU, unpickled where there is none
            self.to("numpy")
        if rng_state is not None and isinstance(self.rng._gen, np.random.Generator):
            self.rng._gen.bit_generator.state = rng_state

    def to(self, backend, device=None):
        """Move parameters and state to ``backend`` ('numpy', 'cupy' or a namespace). Returns self."""
        xp = B.resolve(backend)
        host = {n: B.to_numpy(a) for n, a in {**self.params, **self.state}.items()}
        self.params = {n: B.to_device(host[n], xp, device) for n in self.params}
        self.state = {n: B.to_device(host[n], xp, device) for n in self.state}
        self.xp, self.device = xp, device
        self.dtype = getattr(xp, self.config["dtype"])
        self.rng = B.Random(self.config["seed"] + 1, xp, device)
        return self

    # ----------------------------------------------------------------- forward
    def _prepare(self, batch, need_y):
        """Check a user's batch against this model; return (idx, val, y, weight) in its dtype.

        Every batch is validated (shapes, dtypes, ids in [0, n_features), finite values): a
        batch made for another table would otherwise read the wrong rows (a negative id reads
        from the end). For the log loss, labels must be 0 or 1.
        """
        batch = _as_batch(batch)
        n = self.config["n_features"]
        if need_y and batch.y is None:
            raise E.DataError("this batch has no labels y")
        validate(batch.idx, batch.val, batch.y, n, weight=batch.weight, dtype=np.dtype(self.config["dtype"]))
        y = None if batch.y is None else B.astype(batch.y, self.dtype)
        if need_y and self.config["loss"] == "log" and not bool(self.xp.all((y == 0) | (y == 1))):
            raise E.DataError("the log loss needs labels 0 or 1 (data.binary_labels maps -1/1 to 0/1)")
        w = None if batch.weight is None else B.astype(batch.weight, self.dtype)
        return batch.idx, B.astype(batch.val, self.dtype), y, w

    def forward(self, idx, val, train=False, rng=None, need_dval=False):
        """Model output (logits for the log loss) and the caches of every layer.

        ``train`` switches dropout and batch statistics on; ``rng`` (a
        ``backend.Random``) draws dropout masks (default: the model's own).
        Returns ``(yhat (B,), caches)``; in training the batch-norm running
        averages in ``self.state`` are updated.
        """
        c, p = self.config, self.params
        rng = rng or self.rng
        keep = c["keep_prob"]
        caches = {}
        # first-order part and Bi-Interaction on the touched rows
        if c["impl"] == "sparse":
            sx = L.sparse_input(idx, val, c["n_features"])
            lin, caches["linear"] = L.sparse_linear_forward(sx, p["w0"], p["w"])        # (B,)
            z, caches["bi"] = L.sparse_bi_interaction_forward(sx, p["V"])              # (B, k)
        else:
            lin, caches["linear"] = L.linear_forward(idx, val, p["w0"], p["w"])         # (B,)
            E, caches["embed"] = L.embedding_forward(idx, val, p["V"])                 # (B, F, k)
            z, caches["bi"] = L.bi_interaction_forward(E)                              # (B, k)
        # hidden stack: layer 0 is the Bi-Interaction output (BN, dropout only)
        for l in range(len(c["layers"]) + 1):
            if l > 0:
                z, caches[f"affine{l}"] = L.affine_forward(z, p[f"W{l}"], p[f"b{l}"])
            if c["batch_norm"]:
                z, caches[f"bn{l}"], running = L.batchnorm_forward(
                    z, p[f"gamma{l}"], p[f"beta{l}"], self.state[f"mean{l}"], self.state[f"var{l}"], train)
                if train:
                    self.state[f"mean{l}"], self.state[f"var{l}"] = running
            if l > 0:
                z, caches[f"act{l}"] = L.activation_forward(z, c["activation"])
            # keep[-1] is the Bi-Interaction's, keep[l - 1] hidden layer l's
            z, caches[f"drop{l}"] = L.dropout_forward(z, keep[-1] if l == 0 else keep[l - 1], rng, train)
        if self.kind == "fm":
            f, caches["out"] = L.fm_second_order_forward(z)                            # (B,)
        else:
            f, caches["out"] = L.projection_forward(z, p["h"])                         # (B,)
        return lin + f, caches

    def backward(self, dy, caches, need_dval=False):
        """Gradients of every parameter from dL/dyhat (B,). Embedding tables get ``RowGrad``."""
        c, g = self.config, {}
        if self.kind == "fm":
            dz = L.fm_second_order_backward(dy, caches["out"])
        else:
            dz, g["h"] = L.projection_backward(dy, caches["out"])
        for l in reversed(range(len(c["layers"]) + 1)):
            dz = L.dropout_backward(dz, caches[f"drop{l}"])
            if l > 0:
                dz = L.activation_backward(dz, caches[f"act{l}"])
            if c["batch_norm"]:
                dz, g[f"gamma{l}"], g[f"beta{l}"] = L.batchnorm_backward(dz, caches[f"bn{l}"])
            if l > 0:
                dz, g[f"W{l}"], g[f"b{l}"] = L.affine_backward(dz, caches[f"affine{l}"])
        if c["impl"] == "sparse":
            dval_bi, g["V"] = L.sparse_bi_interaction_backward(dz, caches["bi"], need_dval)
            dval_lin, g["w0"], g["w"] = L.sparse_linear_backward(dy, caches["linear"], need_dval)
        else:
            dE = L.bi_interaction_backward(dz, caches["bi"])
            dval_bi, g["V"] = L.embedding_backward(dE, caches["embed"])
            dval_lin, g["w0"], g["w"] = L.linear_backward(dy, caches["linear"])
        if need_dval:
            g["x"] = dval_bi + dval_lin
        return g

    # --------------------------------------------------------------- user API
    def loss(self, batch, rng=None, input_grad=False):
        """Training-mode loss of ``batch`` and the gradients of every parameter.

        Returns ``(loss, grads)``: ``loss`` a 0-d array on the model's backend
        (no host copy), ``grads`` a dict with the keys of ``params`` (``w`` and
        ``V`` as ``RowGrad``), plus ``x`` (B, F), dL/dval, when ``input_grad``.
        """
        idx, val, y, w = self._prepare(batch, need_y=True)
        return self._loss_and_grads(idx, val, y, w, rng, input_grad)

    def _loss_and_grads(self, idx, val, y, weight=None, rng=None, input_grad=False):
        """``loss`` without the checks, for arrays already validated and in the model's dtype
        (the training loop validates its data once, not every step)."""
        yhat, caches = self.forward(idx, val, train=True, rng=rng)
        loss, dy = loss_forward(self.config["loss"], yhat, y, weight)
        grads = self.backward(dy, caches, need_dval=input_grad)
        lam = self.config["l2"]
        if lam > 0:  # lambda/2 ||V_u||^2 on the rows this batch touches (grads["V"].rows: padding excluded)
            Vu = self.xp.take(self.params["V"], grads["V"].rows, axis=0)
            reg, dreg = l2_loss(Vu, lam)
            loss = loss + reg
            grads["V"] = L.RowGrad(grads["V"].rows, grads["V"].values + dreg)
        return loss, grads

    def scores(self, batch, chunk=16384):
        """Evaluation-mode model output (BN running averages, no dropout), in chunks."""
        batch = _as_batch(batch)
        idx, val, _, _ = self._prepare(Batch(batch.idx, batch.val), need_y=False)
        return self._scores(idx, val, chunk)

    def _scores(self, idx, val, chunk=16384):
        """``scores`` without the checks, for arrays already validated and in the model's dtype
        (``train.predictions`` scores whole Datasets, which were validated when built)."""
        n = idx.shape[0]
        outs = []
        for i in range(0, n, chunk):
            j = min(i + chunk, n)        # the Array API leaves out-of-bounds slice ends undefined
            outs.append(self.forward(idx[i:j, ...], val[i:j, ...], train=False)[0])
        return outs[0] if len(outs) == 1 else self.xp.concat(outs) if hasattr(self.xp, "concat") \
            else self.xp.concatenate(outs)

    def predict(self, batch, chunk=16384):
        """Predictions: yhat for the square loss, probabilities sigmoid(yhat) for the log loss."""
        return self._link(self.scores(batch, chunk))

    def _link(self, s):
        """Scores to predictions: as they are for the square loss, sigmoid(s) for the log loss."""
        return s if self.config["loss"] == "square" else 0.5 * (1.0 + self.xp.tanh(0.5 * s))

    # ---------------------------------------------------------------- summary
    def n_params(self):
        return sum(int(math.prod(a.shape)) for a in self.params.values())

    def __repr__(self):
        c = self.config
        rows = [("w0", "global bias", ()), ("w", "linear weights", (c["n_features"],)),
                ("V", "embeddings v_i", (c["n_features"], c["k"]))]
        if c["batch_norm"]:
            rows.append(("gamma0, beta0", "BN on f_BI", (2, c["k"])))
        for l, d in enumerate(c["layers"], start=1):
            d_in = c["k"] if l == 1 else c["layers"][l - 2]
            rows.append((f"W{l}, b{l}", f"hidden layer {l} ({c['activation']})", (d_in + 1, d)))
            if c["batch_norm"]:
                rows.append((f"gamma{l}, beta{l}", f"BN on layer {l}", (2, d)))
        if "h" in self.params:
            rows.append(("h", "prediction weights", tuple(self.params["h"].shape)))
        name = "FM" if self.kind == "fm" else f"NFM-{len(c['layers'])}"
        lines = [f"{name}(n_features={c['n_features']}, k={c['k']}, layers={c['layers']}, "
                 f"keep_prob={c['keep_prob']}, batch_norm={c['batch_norm']}, loss={c['loss']!r}, "
                 f"dtype={c['dtype']}, backend={self.xp.__name__})",
                 f"  {'parameter':<16}{'role':<30}{'shape':<16}{'count':>12}"]
        for pname, role, shape in rows:
            lines.append(f"  {pname:<16}{role:<30}{str(shape):<16}{math.prod(shape):>12,}")
        n, k = c["n_features"], c["k"]
        lines.append(f"  {'w and V: n (k + 1), the count in the paper':<62}{n * (k + 1):>12,}")
        lines.append(f"  {'total':<62}{self.n_params():>12,}")
        return "\n".join(lines)


def _as_batch(batch):
    """A ``Batch`` from a Batch or a tuple (idx, val) / (idx, val, y); anything else is refused."""
    if isinstance(batch, tuple) and not isinstance(batch, Batch) and len(batch) in (2, 3):
        batch = Batch(*batch)
    if not isinstance(batch, Batch):
        raise E.OptionTypeError(f"expected a Batch (nfm_numpy.make_batch) or a tuple (idx, val) or "
                                f"(idx, val, y), got {type(batch).__name__}")
    return batch


class FM(NFM):
    """Factorization machine: NFM with no hidden layers and h fixed to ones.

    yhat = w0 + sum_i w_i x_i + sum_k dropout(BN(f_BI))_k. The original FM.py
    uses dropout on f_BI (``keep_prob`` 0.5) and no BN by default.
    """

    kind = "fm"

    def __init__(self, n_features, k=64, keep_prob=0.5, batch_norm=False, loss="square", l2=0.0,
                 dtype="float32", seed=2016, backend="numpy", device=None, impl="sparse", init_std=0.01):
        if np.ndim(keep_prob) == 0 and not isinstance(keep_prob, (str, bytes)):
            keep_prob = float(keep_prob) if isinstance(keep_prob, np.ndarray) else keep_prob
        elif not isinstance(keep_prob, (str, bytes)) and hasattr(keep_prob, "__len__"):
            if len(keep_prob) != 1:
                raise E.OptionError(f"FM takes one keep probability (the Bi-Interaction layer's), "
                                    f"got {len(keep_prob)}: {list(keep_prob)}")
            keep_prob = keep_prob[0]
        super().__init__(n_features, k, (), (keep_prob,), batch_norm, "identity", loss, l2, dtype, seed,
                         backend, device, impl, init_std)


CONFIG_KEYS = ("kind", "n_features", "k", "layers", "keep_prob", "batch_norm", "activation", "loss", "l2",
               "dtype", "seed", "impl", "init_std")


def build(config, backend="numpy", device=None):
    """A model from its ``config`` dict (as saved in checkpoints): every key must be there,
    none may be unknown, so a damaged configuration is an error, never a default."""
    c = dict(config)
    missing = [k for k in CONFIG_KEYS if k not in c]
    unknown = sorted(set(c) - set(CONFIG_KEYS))
    if missing or unknown:
        raise E.OptionError("model configuration " + "; ".join(
            ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unknown {', '.join(unknown)}"]
                                                                    if unknown else [])))
    kind = E.choice(c.pop("kind"), "kind", ("nfm", "fm"))
    if kind == "fm":
        layers, activation = c.pop("layers"), c.pop("activation")
        if layers != [] or activation != "identity":
            raise E.OptionError(f"an FM configuration has layers [] and activation 'identity', "
                                f"got {layers!r} and {activation!r}")
        return FM(backend=backend, device=device, **c)
    return NFM(backend=backend, device=device, **c)
