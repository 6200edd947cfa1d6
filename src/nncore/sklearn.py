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
  :meth:`nncore.Network.fit`. Without ``early_stopping`` training stops when
  the training loss has not improved by ``tol`` for ``n_iter_no_change``
  epochs (scikit-learn's MLP rule); with it, on the validation loss of a
  held-out ``validation_fraction``, restoring the best weights.
* ``partial_fit`` runs one epoch over the given data and keeps the network and
  the optimizer (with its moment estimates) between calls.
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
    from sklearn.utils.validation import check_is_fitted
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
from .callbacks import Callback, EarlyStopping
from .network import Network

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = activations.NAMES
_DTYPES = ("float32", "float64")


def _validate_data(est, X, y="no_validation", reset=True, **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, reset=reset, **kwargs)
    return est._validate_data(X, y, reset=reset, **kwargs)  # pragma: no cover


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


class _TolStopping(Callback):
    """scikit-learn's MLP rule: stop after ``patience`` epochs whose training loss
    did not improve on the best by more than ``tol``."""

    def __init__(self, tol, patience):
        super().__init__()
        self.tol, self.patience = tol, patience
        self.best = np.inf
        self.wait = 0
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss", np.nan)
        if loss < self.best - self.tol:
            self.wait = 0
        else:
            self.wait += 1
        self.best = min(self.best, loss)
        if self.wait >= self.patience:
            self.stopped = True
            self.model.stop_training = True


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
        if not (_is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1):
            raise ValueError(f"{name}: n_iter_no_change must be a positive int, got "
                             f"{self.n_iter_no_change!r}")
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
            if not getattr(fresh, "full_batch", False):
                fresh = optim.get(opt, lr=float(self.learning_rate))
            return fresh
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
        return Network.mlp(n_in, hls, n_out, activation=acts, loss=self._loss,
                           dropout=float(self.dropout), l1=float(self.l1), l2=float(self.l2),
                           dtype=str(self.dtype), seed=seed)

    def _validate_X(self, X, reset):
        X = _validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        return np.array(X, dtype=str(self.dtype), order="C", copy=True)

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
        self.validation_loss_curve_ = None
        self.n_iter_ = 0
        self.best_validation_loss_ = None
        self._best_params = None
        self._no_improve = 0
        self._stopped = False

    def _split(self, X, Y):
        """Hold out ``validation_fraction`` (stratified for classifiers)."""
        n = X.shape[0]
        n_val = int(np.ceil(self.validation_fraction * n))
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"{type(self).__name__}: early_stopping needs more samples "
                             f"({n} given, validation_fraction={self.validation_fraction})")
        stratify = self._stratify_labels(Y)
        if stratify is not None:
            counts = np.bincount(stratify)
            counts = counts[counts > 0]
            if counts.min() < 2 or n_val < len(counts) or n - n_val < len(counts):
                stratify = None
        idx_tr, idx_val = train_test_split(
            np.arange(n), test_size=n_val, random_state=self._next_seed(),
            stratify=stratify)
        return X[idx_tr], Y[idx_tr], X[idx_val], Y[idx_val]

    def _stratify_labels(self, Y):
        return None

    def _run_fit(self, X, Y):
        opt = self._optimizer
        callbacks = []
        validation_data = None
        if self.early_stopping:
            X, Y, Xv, Yv = self._split(X, Y)
            validation_data = (Xv, Yv)
            callbacks.append(EarlyStopping(
                monitor="val_loss", patience=self.n_iter_no_change,
                min_delta=float(self.tol), restore_best_weights=True))
        else:
            callbacks.append(_TolStopping(float(self.tol), self.n_iter_no_change))
        hist = self.network_.fit(
            X, Y, optimizer=opt, batch_size=self._fit_batch_size(opt),
            epochs=int(self.epochs), shuffle=bool(self.shuffle),
            validation_data=validation_data, callbacks=callbacks,
            progress=bool(self.verbose), seed=self._next_seed())
        self.history_ = hist
        self.loss_curve_ = list(hist.history.get("loss", []))
        if validation_data is not None:
            self.validation_loss_curve_ = list(hist.history.get("val_loss", []))
            self.best_validation_loss_ = float(np.nanmin(self.validation_loss_curve_))
        self.n_iter_ = len(hist.epoch)
        self.loss_ = float(self.loss_curve_[-1]) if self.loss_curve_ else np.nan
        stopped_early = any(getattr(c, "stopped", False) or
                            getattr(c, "stopped_epoch", None) is not None for c in callbacks)
        full_batch_stop = getattr(hist, "stop_reason", None) is not None
        if self.n_iter_ >= self.epochs and not stopped_early and not full_batch_stop:
            warnings.warn(
                f"{type(self).__name__}: reached epochs={self.epochs} before the "
                "training loss converged; increase epochs or tol", ConvergenceWarning)

    def _partial(self, X, Y):
        """One epoch on (X, Y) keeping network and optimizer state."""
        if self._stopped:
            warnings.warn(f"{type(self).__name__}.partial_fit: early stopping already "
                          "ended training (validation loss stopped improving); the "
                          "call is ignored. Set early_stopping=False to keep training.",
                          ConvergenceWarning)
            return
        opt = self._optimizer
        validation_data = None
        if self.early_stopping and X.shape[0] >= 2:
            X, Y, Xv, Yv = self._split(X, Y)
            validation_data = (Xv, Yv)
        hist = self.network_.fit(
            X, Y, optimizer=opt, batch_size=self._fit_batch_size(opt), epochs=1,
            shuffle=bool(self.shuffle), validation_data=validation_data,
            progress=bool(self.verbose), seed=self._next_seed())
        self.history_ = hist
        self.loss_curve_.append(float(hist.history["loss"][-1]))
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ += 1
        if validation_data is not None:
            val = float(hist.history["val_loss"][-1])
            if self.validation_loss_curve_ is None:
                self.validation_loss_curve_ = []
            self.validation_loss_curve_.append(val)
            best = self.best_validation_loss_
            if best is None or val < best - float(self.tol):
                self.best_validation_loss_ = val
                self._best_params = np.array(self.network_.params, copy=True)
                self._no_improve = 0
            else:
                self._no_improve += 1
                if self._no_improve >= self.n_iter_no_change:
                    self.network_.params[:] = self._best_params
                    self._stopped = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
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
        Hold out ``validation_fraction`` of the data (stratified) and stop when
        the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, keeping the best weights.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 10
    tol : float, default 1e-4
        Without early stopping, training stops when the training loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs.
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
        return Y

    def fit(self, X, y):
        """Train on ``(X, y)`` from scratch (or from the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels (any sortable type).

        Returns
        -------
        self
        """
        hls, acts = self._check_params()
        warm = self.warm_start and hasattr(self, "network_")
        X, y = _validate_data(self, X, y, reset=not warm, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes "
                             f"to train; got one class ({classes[0]!r})")
        if warm:
            if not np.array_equal(classes, self.classes_):
                raise ValueError(f"warm_start: y has classes {classes}, but the fitted "
                                 f"model has {self.classes_}")
        else:
            self.classes_ = classes
            self._init_state(X.shape[1], len(classes), hls, acts)
        Y = np.searchsorted(self.classes_, y).astype(np.intp)
        X = np.array(X, dtype=str(self.dtype), order="C", copy=True)
        self._run_fit(X, Y)
        return self

    def partial_fit(self, X, y, classes=None):
        """Train for one epoch on ``(X, y)``, keeping all state between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), optional
            All classes that will ever appear; required on the first call.

        Returns
        -------
        self
        """
        first = not hasattr(self, "network_")
        if first:
            hls, acts = self._check_params()
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = _validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if first:
            classes = np.unique(np.asarray(classes))
            if classes.size < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes; "
                                 f"got {classes}")
            self.classes_ = classes
            self._init_state(X.shape[1], len(classes), hls, acts)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes={np.unique(classes)} differs from the classes of "
                             f"the first partial_fit call {self.classes_}")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not in classes: {unknown}")
        Y = np.searchsorted(self.classes_, y).astype(np.intp)
        X = np.array(X, dtype=str(self.dtype), order="C", copy=True)
        self._partial(X, Y)
        return self

    def predict_proba(self, X):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator has not been fitted.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return np.asarray(self.network_.predict_proba(X))

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
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


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

    def fit(self, X, y):
        """Train on ``(X, y)`` from scratch (or from the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        hls, acts = self._check_params()
        warm = self.warm_start and hasattr(self, "network_")
        X, y = _validate_data(self, X, y, reset=not warm, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        Y = self._targets(y, first=not warm)
        if not warm:
            self._init_state(X.shape[1], Y.shape[1], hls, acts)
        X = np.array(X, dtype=str(self.dtype), order="C", copy=True)
        self._run_fit(X, Y)
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

    def partial_fit(self, X, y):
        """Train for one epoch on ``(X, y)``, keeping all state between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        first = not hasattr(self, "network_")
        if first:
            hls, acts = self._check_params()
        X, y = _validate_data(self, X, y, reset=first, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        Y = self._targets(y, first=first)
        if first:
            self._init_state(X.shape[1], Y.shape[1], hls, acts)
        X = np.array(X, dtype=str(self.dtype), order="C", copy=True)
        self._partial(X, Y)
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
        out = np.asarray(self.network_.forward(X, training=False))
        return out.reshape(-1) if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
