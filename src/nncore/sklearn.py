"""scikit-learn estimators backed by nncore networks.

``MLPClassifier`` and ``MLPRegressor`` follow scikit-learn's conventions
(``fit``/``partial_fit``/``predict``/``score``, ``get_params``, trailing
underscore for fitted attributes, ``random_state``) so they drop into
``Pipeline``, ``GridSearchCV`` and ``cross_val_score``. They pass
``sklearn.utils.estimator_checks.check_estimator``.

scikit-learn is an optional dependency (``pip install nncore-train[sklearn]``);
``import nncore`` does not import this module.

Design
------
* All hyper-parameters are stored unchanged by ``__init__`` and validated in
  ``fit`` (scikit-learn's rule, so ``set_params`` and ``clone`` work).
* ``fit`` builds a fresh :class:`nncore.Network` and optimizer and trains with
  :meth:`nncore.Network.fit`. Stopping follows scikit-learn's MLP rule
  (``_NoImprovement``): an epoch whose value is above ``best - tol`` counts,
  and training stops once more than ``n_iter_no_change`` such epochs come in
  a row. The value is the training loss, or with ``early_stopping`` the
  validation loss of a held-out, stratified ``validation_fraction`` (a class
  too small to stratify is an error, as in scikit-learn), and the best
  validation weights are kept. For full-batch optimizers (L-BFGS, ...) ``tol``
  is the gradient tolerance ``gtol``, as scikit-learn's L-BFGS uses it.
* ``partial_fit`` runs one epoch over the given data and keeps the network,
  the optimizer (with its moment estimates) and the stopping state between
  calls; warm-started ``fit`` calls append to ``loss_curve_`` and
  ``validation_loss_curve_``.
* Multilabel indicator targets train one sigmoid output per label with binary
  cross-entropy.
* With an integer ``random_state`` every fit is reproducible: the network's
  initialisation and the shuffling/dropout seeds derive from it.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "nncore.sklearn needs scikit-learn, which is not installed. "
        "Install it with: pip install nncore-train[sklearn]   (or: pip install scikit-learn)"
    ) from exc

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

from . import activations, optim
from ._checks import check_fits_dtype
from .callbacks import Callback, EarlyStopping
from ._sparse_rows import fit_epochs, is_sparse, map_rows
from .network import Network

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = activations.NAMES
_DTYPES = ("float32", "float64")


# What scikit-learn's validate_data sets with reset=True (put back when our checks fail).
_RESET_ATTRIBUTES = ("n_features_in_", "feature_names_in_")


def _validate_data(est, X, y="no_validation", reset=True, **kwargs):
    """scikit-learn's validate_data, then the range check of Network.fit.

    Float64 data beyond the range of a float32 model become inf when cast to
    it, so X (and numeric targets) are checked before the cast, with the
    same ValueError as ``Network.fit``; the estimator is then left as it was.
    """
    saved = {k: est.__dict__[k] for k in _RESET_ATTRIBUTES if k in est.__dict__}
    if _sk_validate_data is not None:
        out = _sk_validate_data(est, X, y, reset=reset, **kwargs)
    else:  # pragma: no cover
        out = est._validate_data(X, y, reset=reset, **kwargs)
    checked = [("X", out if isinstance(y, str) and y == "no_validation" else out[0])]
    if kwargs.get("y_numeric"):
        checked.append(("y", np.asarray(out[1])))
    dtype = est.network_.dtype if not reset and hasattr(est, "network_") else str(est.dtype)
    try:
        for name, a in checked:
            check_fits_dtype(a.data if is_sparse(a) else a, dtype, name)
    except ValueError:
        for k in _RESET_ATTRIBUTES:
            est.__dict__.pop(k, None)
        est.__dict__.update(saved)
        raise
    return out


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


class _NoImprovement:
    """scikit-learn's MLP stopping rule (``_update_no_improvement_count``), one state.

    An epoch counts as no improvement when its value is above ``best - tol``;
    training stops once the count *exceeds* ``n_iter_no_change`` (so after
    ``n_iter_no_change + 1`` such epochs in a row). Shared by ``fit`` and
    ``partial_fit``, so a ``partial_fit`` after ``fit`` continues the same count
    and restores parameters ``fit`` recorded.
    """

    def __init__(self, tol, n_iter_no_change, keep_best):
        self.tol, self.n_iter_no_change, self.keep_best = tol, n_iter_no_change, keep_best
        self.best = np.inf
        self.count = 0
        self.best_params = None
        self.stopped = False

    def update(self, value, params):
        """Record one epoch's value; True when training should stop."""
        if value > self.best - self.tol or not np.isfinite(value):
            self.count += 1
        else:
            self.count = 0
        if value < self.best:
            self.best = float(value)
            if self.keep_best:
                self.best_params = np.array(params, copy=True)
        return self.count > self.n_iter_no_change

    def restore_best(self, params):
        if self.keep_best and self.best_params is not None:
            params[:] = self.best_params


class _StopCallback(Callback):
    """Applies a :class:`_NoImprovement` rule to ``monitor`` at every epoch end of a fit."""

    def __init__(self, rule, monitor):
        super().__init__()
        self.rule, self.monitor = rule, monitor

    def on_epoch_end(self, epoch, logs=None):
        value = float((logs or {}).get(self.monitor, np.nan))
        if self.rule.update(value, self.model.params):
            self.rule.stopped = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        # as scikit-learn: with early stopping, the best validation weights are kept
        self.rule.restore_best(self.model.params)


class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    _loss = None  # set by subclasses

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *,
                 optimizer="adam", learning_rate=1e-3, batch_size=32, epochs=200,
                 l1=0.0, l2=0.0, dropout=0.0, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 shuffle=True, random_state=None, dtype="float64",
                 warm_start=False, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.l1 = l1
        self.l2 = l2
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.dtype = dtype
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _check_params(self):
        """Validate hyper-parameters; return (hidden sizes, activations)."""
        name = type(self).__name__
        hls = self.hidden_layer_sizes
        if _is_int(hls):
            hls = (hls,)
        try:
            hls = tuple(hls)
        except TypeError:
            raise TypeError(f"{name}: hidden_layer_sizes must be an int or a sequence "
                            f"of ints, got {self.hidden_layer_sizes!r}") from None
        if not all(_is_int(h) and h > 0 for h in hls):
            raise ValueError(f"{name}: hidden_layer_sizes must be positive ints, got "
                             f"{self.hidden_layer_sizes!r}")
        act = self.activation
        acts = [act] * len(hls) if isinstance(act, str) else list(act) \
            if isinstance(act, (list, tuple)) else None
        if acts is None:
            raise TypeError(f"{name}: activation must be a string or a list of strings, "
                            f"got {act!r}")
        if len(acts) != len(hls):
            raise ValueError(f"{name}: {len(acts)} activations given for "
                             f"{len(hls)} hidden layers")
        for a in acts:
            if not isinstance(a, str) or a.lower() not in _ACTIVATIONS:
                raise ValueError(f"{name}: unknown activation {a!r}; expected one of "
                                 f"{_ACTIVATIONS}")
        acts = [a.lower() for a in acts]
        if not (_is_real(self.learning_rate) and np.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise ValueError(f"{name}: learning_rate must be a positive number, got "
                             f"{self.learning_rate!r}")
        bs = self.batch_size
        if not (bs is None or (isinstance(bs, str) and bs == "full")
                or (_is_int(bs) and bs >= 1)):
            raise ValueError(f"{name}: batch_size must be a positive int, 'full' or None, "
                             f"got {bs!r}")
        if not (_is_int(self.epochs) and self.epochs >= 1):
            raise ValueError(f"{name}: epochs must be a positive int, got {self.epochs!r}")
        for pname in ("l1", "l2", "tol"):
            v = getattr(self, pname)
            if not (_is_real(v) and np.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: {pname} must be a number >= 0, got {v!r}")
        if not (_is_real(self.dropout) and 0 <= self.dropout < 1):
            raise ValueError(f"{name}: dropout must be in [0, 1), got {self.dropout!r}")
        if not (_is_real(self.validation_fraction) and 0 < self.validation_fraction < 1):
            raise ValueError(f"{name}: validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction!r}")
        nic = self.n_iter_no_change
        if not ((_is_int(nic) and nic >= 1) or (_is_real(nic) and nic == np.inf)):
            raise ValueError(f"{name}: n_iter_no_change must be a positive int or np.inf, "
                             f"got {nic!r}")
        if str(self.dtype) not in _DTYPES:
            raise ValueError(f"{name}: dtype must be 'float32' or 'float64', got "
                             f"{self.dtype!r}")
        # Unknown names fail here, before any state changes.
        if getattr(self._make_optimizer(), "full_batch", False) and self.dropout > 0:
            raise ValueError(f"{name}: optimizer={self.optimizer!r} is a full-batch method "
                             "with a line search and needs a deterministic loss; use "
                             "dropout=0 or a first-order optimizer")
        return hls, acts

    def _make_optimizer(self):
        opt = self.optimizer
        if isinstance(opt, str):
            fresh = optim.get(opt)
            if getattr(fresh, "full_batch", False):
                # scikit-learn's rule for L-BFGS: tol is the gradient tolerance
                return optim.get(opt, gtol=float(self.tol))
            return optim.get(opt, lr=float(self.learning_rate))
        if isinstance(opt, type):
            return optim.get(opt)
        import copy
        # An instance given as a hyper-parameter must not carry state between fits.
        fresh = copy.deepcopy(optim.get(opt))
        if hasattr(fresh, "reset"):
            fresh.reset()
        return fresh

    def _fit_batch_size(self, optimizer):
        if getattr(optimizer, "full_batch", False):
            return "full"
        return self.batch_size

    def _build(self, n_in, n_out, hls, acts, seed):
        return Network.mlp(n_in, hls, n_out, activation=acts, loss=self._network_loss(),
                           dropout=float(self.dropout), l1=float(self.l1), l2=float(self.l2),
                           dtype=str(self.dtype), seed=seed)

    def _network_loss(self):
        return self._loss

    def _validate_X(self, X, reset):
        X = _validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                           accept_sparse="csr")
        return self._as_input(X)

    def _as_input(self, X):
        """A C-contiguous copy in the model's dtype; sparse X stays CSR (densified by chunks)."""
        if is_sparse(X):
            return X.tocsr().astype(str(self.dtype))
        return np.array(X, dtype=str(self.dtype), order="C", copy=True)

    def _outputs(self, X, fn):
        """``fn`` (a network method) on validated X; sparse rows go chunk by chunk."""
        if is_sparse(X):
            return map_rows(fn, X, self.network_.dtype)
        return np.asarray(fn(X))

    def _next_seed(self):
        return int(self._rng.randint(0, 2**31 - 1))

    # ------------------------------------------------------------------ training
    def _init_state(self, n_features, n_out, hls, acts):
        self._rng = check_random_state(self.random_state)
        # Copy so a RandomState instance passed by the user advances only once.
        self._rng = np.random.RandomState(self._rng.randint(0, 2**31 - 1))
        self.network_ = self._build(n_features, n_out, hls, acts, self._next_seed())
        self._optimizer = self._make_optimizer()
        self.loss_curve_ = []
        self.validation_loss_curve_ = [] if self.early_stopping else None
        self.n_iter_ = 0
        self.best_validation_loss_ = None
        self._rule = _NoImprovement(float(self.tol), self.n_iter_no_change,
                                    keep_best=bool(self.early_stopping))

    def _split(self, X, Y, sample_weight=None):
        """Hold out ``validation_fraction`` (stratified for single-label classifiers);
        the held-out rows keep their sample weights (for a weighted validation loss).

        As scikit-learn, a class too small to stratify is an error (from
        ``train_test_split``), never a silent unstratified split.
        """
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"{type(self).__name__}: early_stopping needs more samples "
                             f"({n} given, validation_fraction={self.validation_fraction})")
        idx_tr, idx_val = train_test_split(
            np.arange(n), test_size=n_val, random_state=self._next_seed(),
            stratify=self._stratify_labels(Y))
        if sample_weight is None:
            return X[idx_tr], Y[idx_tr], (X[idx_val], Y[idx_val]), None
        return (X[idx_tr], Y[idx_tr], (X[idx_val], Y[idx_val], sample_weight[idx_val]),
                sample_weight[idx_tr])

    def _stratify_labels(self, Y):
        return None

    def _stopping_callbacks(self, opt):
        """The stopping rule of this fit, as scikit-learn applies it."""
        rule = self._rule
        # set_params between warm-started fits changes the rule, not its history
        rule.tol, rule.n_iter_no_change = float(self.tol), self.n_iter_no_change
        rule.keep_best = bool(self.early_stopping)
        rule.stopped = False
        if self.early_stopping:
            return [_StopCallback(rule, "val_loss")]
        if getattr(opt, "full_batch", False):
            return []  # tol is the optimizer's gradient tolerance (gtol), as for L-BFGS
        return [_StopCallback(rule, "loss")]

    def _record(self, hist, validation):
        """Append this run's curves (warm starts and partial_fit continue them)."""
        self.history_ = hist
        self.loss_curve_.extend(float(v) for v in hist.history.get("loss", []))
        if validation:
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            self.validation_loss_curve_.extend(float(v) for v in hist.history.get("val_loss", []))
            self.best_validation_loss_ = float(self._rule.best)
        self.n_iter_ += len(hist.epoch)
        self.loss_ = float(self.loss_curve_[-1]) if self.loss_curve_ else np.nan

    def _sample_weight(self, sample_weight, X):
        """scikit-learn's checks (a scalar means equal weights), as float64, or None."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64,
                                    ensure_non_negative=True)

    def _run_fit(self, X, Y, sample_weight=None):
        opt = self._optimizer
        validation_data = None
        if self.early_stopping:
            X, Y, validation_data, sample_weight = self._split(X, Y, sample_weight)
        callbacks = self._stopping_callbacks(opt)
        if is_sparse(X):
            hist = fit_epochs(self.network_, X, Y, optimizer=opt,
                              batch_size=self._fit_batch_size(opt), epochs=int(self.epochs),
                              shuffle=bool(self.shuffle), next_seed=self._next_seed,
                              validation_data=validation_data,
                              stop_rule=self._rule if callbacks else None,
                              sample_weight=sample_weight)
        else:
            hist = self.network_.fit(
                X, Y, optimizer=opt, batch_size=self._fit_batch_size(opt),
                epochs=int(self.epochs), shuffle=bool(self.shuffle),
                validation_data=validation_data, callbacks=callbacks,
                progress=bool(self.verbose), seed=self._next_seed(),
                sample_weight=sample_weight)
        self._record(hist, validation_data is not None)
        full_batch_stop = getattr(hist, "stop_reason", None) is not None
        if len(hist.epoch) >= self.epochs and not self._rule.stopped and not full_batch_stop:
            warnings.warn(
                f"{type(self).__name__}: reached epochs={self.epochs} before the "
                "training loss converged; increase epochs or tol", ConvergenceWarning)

    def _partial(self, X, Y, sample_weight=None):
        """One epoch on (X, Y) keeping network, optimizer and stopping state."""
        if self._rule.stopped and self.early_stopping:
            warnings.warn(f"{type(self).__name__}.partial_fit: early stopping already "
                          "ended training (validation loss stopped improving); the "
                          "call is ignored. Set early_stopping=False to keep training.",
                          ConvergenceWarning)
            return
        opt = self._optimizer
        validation_data = None
        if self.early_stopping and X.shape[0] >= 2:
            X, Y, validation_data, sample_weight = self._split(X, Y, sample_weight)
        if is_sparse(X):
            hist = fit_epochs(self.network_, X, Y, optimizer=opt,
                              batch_size=self._fit_batch_size(opt), epochs=1,
                              shuffle=bool(self.shuffle), next_seed=self._next_seed,
                              validation_data=validation_data, sample_weight=sample_weight)
        else:
            hist = self.network_.fit(
                X, Y, optimizer=opt, batch_size=self._fit_batch_size(opt), epochs=1,
                shuffle=bool(self.shuffle), validation_data=validation_data,
                progress=bool(self.verbose), seed=self._next_seed(),
                sample_weight=sample_weight)
        self._record(hist, validation_data is not None)
        if validation_data is not None:
            if self._rule.update(self.validation_loss_curve_[-1], self.network_.params):
                self._rule.restore_best(self.network_.params)
                self._rule.stopped = True

    @property
    def _stopped(self):
        """True once early stopping ended training (partial_fit then does nothing)."""
        return self._rule.stopped and bool(self.early_stopping)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.sparse = True  # CSR, densified chunk by chunk (nncore._sparse_rows)
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained with nncore.

    A dense network with ``len(hidden_layer_sizes)`` hidden layers and a
    softmax output trained with cross-entropy (also for two classes, so
    ``predict_proba`` has one column per class).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Units per hidden layer; ``()`` gives multinomial logistic regression.
    activation : str or list of str, default "relu"
        A name in ``nncore.activations.NAMES`` (``"relu"``, ``"tanh"``,
        ``"sigmoid"``, ``"leaky_relu"``, ``"elu"``, ``"softplus"``, ``"linear"``),
        for every hidden layer or one per hidden layer.
    optimizer : str or optimizer, default "adam"
        A name of :func:`nncore.optim.get` (``"sgd"``, ``"momentum"``,
        ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``,
        ``"cg"``, ``"newton"``, ``"bfgs"``, ``"dfp"``, ``"lbfgs"``) or an
        optimizer instance (copied at each ``fit``).
    learning_rate : float, default 1e-3
        Step size for an optimizer given by name (full-batch ones use a line
        search and ignore it).
    batch_size : int, "full" or None, default 32
        Mini-batch size; ``1`` is stochastic, ``"full"`` full-batch gradient
        descent. Full-batch optimizers always use the whole set.
    epochs : int, default 200
        Maximum number of passes over the training data.
    l1, l2 : float, default 0.0
        L1 / L2 penalties on the weights (both: elastic net).
    dropout : float, default 0.0
        Dropout rate after every hidden layer.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified for single-label
        targets) and stop when the validation loss has not improved by ``tol``
        for more than ``n_iter_no_change`` epochs, keeping the best weights.
    validation_fraction : float, default 0.1
    n_iter_no_change : int or np.inf, default 10
        scikit-learn's rule: stop after ``n_iter_no_change + 1`` epochs in a
        row without an improvement of more than ``tol``; ``np.inf`` never stops.
    tol : float, default 1e-4
        Without early stopping, the training loss is watched instead. For a
        full-batch optimizer given by name, ``tol`` is its gradient tolerance
        (``gtol``: stop when ``max |g| <= tol``), as scikit-learn's L-BFGS.
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : int, RandomState or None, default None
        Seeds the initialisation, the validation split, shuffling and dropout.
    dtype : {"float64", "float32"}, default "float64"
    warm_start : bool, default False
        Let ``fit`` continue from the previous solution.
    verbose : bool, default False
        Show a progress bar.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    network_ : nncore.Network
        The trained network (inputs are the features as given).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fit on a DataFrame with string column names.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_loss_curve_ : list of float or None
        Validation loss per epoch (with ``early_stopping``).
    best_validation_loss_ : float or None
    loss_ : float
        Final training loss.
    n_iter_ : int
        Epochs run.
    history_ : nncore.History
        The last training run's history.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from nncore.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((16,), epochs=100, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> clf.score(X, y) > 0.9                                             # doctest: +SKIP
    True
    """

    _loss = "cross_entropy"

    def _stratify_labels(self, Y):
        # as scikit-learn: multilabel targets are not stratified
        return None if Y.ndim == 2 else Y

    def _network_loss(self):
        # one sigmoid per label for multilabel indicator targets
        return "binary_cross_entropy" if getattr(self, "_multilabel", False) else "cross_entropy"

    def _targets(self, y):
        """(y as 1-D labels or a 2-D 0/1 indicator matrix, its classes, is multilabel)."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if y.ndim == 2:  # check_classification_targets let only indicators through
            return y, np.arange(y.shape[1]), True
        return y, np.unique(y), False

    def _encode(self, y):
        if self._multilabel:
            return np.array(y, dtype=str(self.dtype), order="C")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not in classes: {unknown}")
        return np.searchsorted(self.classes_, y).astype(np.intp)

    def _set_classes(self, classes, multilabel, n_features, hls, acts):
        if classes.size < 2 and not multilabel:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes "
                             f"to train; got one class ({classes[0]!r})")
        self.classes_ = classes
        self._multilabel = multilabel
        self._init_state(n_features, len(classes), hls, acts)

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)`` from scratch (or from the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (any sortable type), or a multilabel indicator matrix
            of 0/1 (one sigmoid output and binary cross-entropy per label).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample: each mini-batch's loss is
            ``sum w_n l_n / sum w_n`` (full-batch optimizers: over the whole
            set, so integer weights equal repeated rows); with
            ``early_stopping`` the validation loss is weighted too.

        Returns
        -------
        self
        """
        hls, acts = self._check_params()
        warm = self.warm_start and hasattr(self, "network_")
        X, y = _validate_data(self, X, y, reset=not warm, multi_output=True,
                              dtype=[np.float64, np.float32], accept_sparse="csr")
        sample_weight = self._sample_weight(sample_weight, X)
        y, classes, multilabel = self._targets(y)
        if warm:
            if multilabel != self._multilabel or not np.array_equal(classes, self.classes_):
                raise ValueError(f"warm_start: y has classes {classes}, but the fitted "
                                 f"model has {self.classes_}")
        else:
            self._set_classes(classes, multilabel, X.shape[1], hls, acts)
        X = self._as_input(X)
        self._run_fit(X, self._encode(y), sample_weight)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on ``(X, y)``, keeping all state between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), optional
            All classes that will ever appear; required on the first call
            (for multilabel targets, the label indices ``0 .. n_labels - 1``).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample: each mini-batch's loss is
            ``sum w_n l_n / sum w_n`` (full-batch optimizers: over the whole
            set, so integer weights equal repeated rows); with
            ``early_stopping`` the validation loss is weighted too.

        Returns
        -------
        self
        """
        first = not hasattr(self, "network_")
        if first:
            hls, acts = self._check_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = _validate_data(self, X, y, reset=first, multi_output=True,
                              dtype=[np.float64, np.float32], accept_sparse="csr")
        sample_weight = self._sample_weight(sample_weight, X)
        y, y_classes, multilabel = self._targets(y)
        if first:
            classes = y_classes if multilabel else np.unique(np.asarray(classes))
            self._set_classes(classes, multilabel, X.shape[1], hls, acts)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={np.unique(classes)} differs from the classes of "
                             f"the first partial_fit call {self.classes_}")
        if multilabel != self._multilabel:
            raise ValueError("y switches between labels and a multilabel indicator matrix")
        Y = self._encode(y)
        X = self._as_input(X)
        self._partial(X, Y, sample_weight)
        return self

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_`` (softmax rows); for multilabel
            targets one independent sigmoid probability per label.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator has not been fitted.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._outputs(X, self.network_.predict_proba)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``, or a 0/1 indicator matrix for multilabel
            targets.
        """
        proba = self.predict_proba(X)
        if self._multilabel:  # as scikit-learn's LabelBinarizer: p > 0.5
            return (proba > 0.5).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained with nncore (mean squared error).

    The output layer is linear with one unit per target; the loss is the
    lecture's ``1/(2N) Σ (out − d)²``. Parameters, attributes and methods
    are those of :class:`MLPClassifier` except that there are no classes and
    ``predict`` returns ``(n_samples,)`` for a 1-D ``y`` and
    ``(n_samples, n_targets)`` for a 2-D one. Targets are used as given:
    standardise them (e.g. ``TransformedTargetRegressor``) when their scale is
    far from 1.

    Examples
    --------
    >>> from nncore.sklearn import MLPRegressor
    >>> reg = MLPRegressor((32, 32), activation="tanh", random_state=0)  # doctest: +SKIP
    >>> reg.fit(X, y).score(X, y)                                        # doctest: +SKIP
    """

    _loss = "mse"

    def fit(self, X, y, sample_weight=None):
        """Train on ``(X, y)`` from scratch (or from the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample: each mini-batch's loss is
            ``sum w_n l_n / sum w_n`` (full-batch optimizers: over the whole
            set, so integer weights equal repeated rows); with
            ``early_stopping`` the validation loss is weighted too.

        Returns
        -------
        self
        """
        hls, acts = self._check_params()
        warm = self.warm_start and hasattr(self, "network_")
        X, y = _validate_data(self, X, y, reset=not warm, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32], accept_sparse="csr")
        sample_weight = self._sample_weight(sample_weight, X)
        Y = self._targets(y, first=not warm)
        if not warm:
            self._init_state(X.shape[1], Y.shape[1], hls, acts)
        X = self._as_input(X)
        self._run_fit(X, Y, sample_weight)
        return self

    def _targets(self, y, first):
        y = np.asarray(y)
        y_ndim = y.ndim
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        Y = np.array(Y, dtype=str(self.dtype), order="C", copy=True)
        if first:
            self._y_ndim = y_ndim
            self.n_outputs_ = Y.shape[1]
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} targets, but {type(self).__name__} was "
                             f"fitted with {self.n_outputs_}")
        return Y

    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch on ``(X, y)``, keeping all state between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight per sample: each mini-batch's loss is
            ``sum w_n l_n / sum w_n`` (full-batch optimizers: over the whole
            set, so integer weights equal repeated rows); with
            ``early_stopping`` the validation loss is weighted too.

        Returns
        -------
        self
        """
        first = not hasattr(self, "network_")
        if first:
            hls, acts = self._check_params()
        X, y = _validate_data(self, X, y, reset=first, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32], accept_sparse="csr")
        sample_weight = self._sample_weight(sample_weight, X)
        Y = self._targets(y, first=first)
        if first:
            self._init_state(X.shape[1], Y.shape[1], hls, acts)
        X = self._as_input(X)
        self._partial(X, Y, sample_weight)
        return self

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            1-D when the training ``y`` was 1-D.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator has not been fitted.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        out = self._outputs(X, self.network_.forward)
        return out.reshape(-1) if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
