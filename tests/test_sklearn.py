"""nncore.sklearn: scikit-learn compatibility (check_estimator) and behaviour."""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nncore as nc  # noqa: E402
from nncore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Short runs hit the epoch limit on purpose; the one test about the warning
# uses pytest.warns, which still sees it.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# Small networks keep the ~50 fits of check_estimator fast; every check runs.
@parametrize_with_checks([
    MLPClassifier(hidden_layer_sizes=(16,), epochs=100, learning_rate=1e-2),
    MLPRegressor(hidden_layer_sizes=(16,), epochs=100, learning_rate=1e-2),
])
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_default_estimators_pass_check_estimator():
    """The defaults themselves (hidden (100,), epochs 200) pass as well.

    (The array-API check is skipped by scikit-learn unless SCIPY_ARRAY_API=1;
    nncore works on NumPy arrays only.)
    """
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_estimator(MLPClassifier())
        check_estimator(MLPRegressor())


def _iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_classifier_learns_iris_and_matches_network():
    X, y = _iris()
    clf = MLPClassifier((16,), activation="tanh", learning_rate=1e-2, epochs=150,
                        random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.n_features_in_ == 4
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # The estimator is a thin layer over the network: same numbers.
    net = clf.network_
    assert isinstance(net, nc.Network)
    np.testing.assert_allclose(proba, net.predict_proba(X), rtol=0, atol=0)
    # Independent check of the softmax from the raw weights.
    W1, b1 = net.layers[0].W, net.layers[0].b
    W2, b2 = net.layers[1].W, net.layers[1].b
    logits = np.tanh(X @ W1 + b1) @ W2 + b2
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, ref, rtol=1e-10, atol=1e-12)
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_string_labels_and_binary_proba():
    X, y = _iris()
    keep = y < 2
    labels = np.array(["setosa", "versicolor"])[y[keep]]
    clf = MLPClassifier((8,), epochs=60, learning_rate=1e-2, random_state=1).fit(X[keep], labels)
    assert list(clf.classes_) == ["setosa", "versicolor"]
    assert clf.predict_proba(X[keep]).shape == (100, 2)
    assert set(clf.predict(X[keep])) <= {"setosa", "versicolor"}
    assert clf.score(X[keep], labels) == 1.0


def test_per_layer_activation_dropout_regularizer():
    X, y = _iris()
    clf = MLPClassifier((12, 6), activation=["relu", "tanh"], dropout=0.1, l1=1e-4, l2=1e-3,
                        epochs=5, random_state=0).fit(X, y)
    dense = [layer for layer in clf.network_.layers if isinstance(layer, nc.Dense)]
    assert [d.activation for d in dense] == ["relu", "tanh", "linear"]
    assert [d.n_out for d in dense] == [12, 6, 3]
    assert sum(isinstance(layer, nc.Dropout) for layer in clf.network_.layers) == 2
    assert isinstance(clf.network_.regularizer, nc.ElasticNet)
    with pytest.raises(ValueError, match="activations"):
        MLPClassifier((4, 4), activation=["relu"]).fit(X, y)


def test_regressor_multioutput_and_shapes():
    X, Y = make_regression(n_samples=150, n_features=4, n_targets=2, noise=0.1, random_state=0)
    Y = Y / Y.std(axis=0)
    reg = MLPRegressor((32,), learning_rate=1e-2, epochs=200, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (150, 2)
    assert reg.score(X, Y) > 0.95
    reg1 = MLPRegressor((8,), epochs=3, random_state=0).fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (150,)
    # mse convention: loss = 1/(2N) sum (out - d)^2 (the lecture's).
    out = reg.predict(X)
    np.testing.assert_allclose(reg.network_.loss(X, Y), 0.5 * np.mean(np.sum((out - Y) ** 2, 1)),
                               rtol=1e-10)


def test_random_state_reproducible_and_different_seeds_differ():
    X, y = _iris()
    a = MLPClassifier((8,), epochs=5, random_state=3).fit(X, y)
    b = MLPClassifier((8,), epochs=5, random_state=3).fit(X, y)
    c = MLPClassifier((8,), epochs=5, random_state=4).fit(X, y)
    np.testing.assert_array_equal(a.network_.params, b.network_.params)
    assert not np.array_equal(a.network_.params, c.network_.params)


def test_early_stopping_records_validation_and_restores_best():
    X, y = _iris()
    clf = MLPClassifier((32,), learning_rate=5e-2, epochs=300, early_stopping=True,
                        validation_fraction=0.2, n_iter_no_change=5, random_state=0).fit(X, y)
    assert clf.validation_loss_curve_ is not None
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.n_iter_ < 300
    assert clf.best_validation_loss_ == pytest.approx(min(clf.validation_loss_curve_))


def test_partial_fit_keeps_optimizer_state_and_equals_manual_loop():
    """partial_fit = one epoch of net.fit with the same (stateful) optimizer."""
    X, y = _iris()
    clf = MLPClassifier((8,), batch_size=50, learning_rate=1e-2, shuffle=False, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    # Reference: a network with the same initial weights and one Adam instance
    # kept across epochs (batch order fixed because shuffle=False).
    ref_net = nc.Network.from_config(clf.network_.get_config(), dtype="float64")
    ref = MLPClassifier((8,), batch_size=50, learning_rate=1e-2, shuffle=False, random_state=0)
    ref.partial_fit(X, y, classes=[0, 1, 2])  # same seed: same weights after 1 epoch
    np.testing.assert_array_equal(ref.network_.params, clf.network_.params)
    for _ in range(3):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 4 and len(clf.loss_curve_) == 4

    # Manual loop with a persistent Adam from the same starting weights.
    start = MLPClassifier((8,), batch_size=50, learning_rate=1e-2, shuffle=False,
                          random_state=0, epochs=1)
    start._check_params()
    start._init_state(4, 3, (8,), ["relu"])
    ref_net.params[:] = start.network_.params
    opt = nc.optim.Adam(1e-2)
    for _ in range(4):
        ref_net.fit(X, y, optimizer=opt, batch_size=50, epochs=1, shuffle=False, progress=False)
    np.testing.assert_allclose(clf.network_.params, ref_net.params, rtol=1e-10, atol=1e-12)

    fresh_each_time = nc.Network.from_config(clf.network_.get_config(), dtype="float64")
    fresh_each_time.params[:] = start.network_.params
    for _ in range(4):
        fresh_each_time.fit(X, y, optimizer=nc.optim.Adam(1e-2), batch_size=50, epochs=1,
                            shuffle=False, progress=False)
    assert not np.allclose(clf.network_.params, fresh_each_time.params)


def test_partial_fit_errors():
    X, y = _iris()
    with pytest.raises(ValueError, match="classes"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="not in classes"):
        clf.partial_fit(X, y + 5)


def test_partial_fit_with_early_stopping_stops_and_keeps_best():
    X, y = _iris()
    clf = MLPClassifier((32,), learning_rate=0.2, early_stopping=True, n_iter_no_change=2,
                        validation_fraction=0.3, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(200):
            clf.partial_fit(X, y)
            if clf._stopped:
                break
    assert clf._stopped
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    n = clf.n_iter_
    with pytest.warns(ConvergenceWarning, match="early stopping"):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == n


def test_warm_start_continues():
    X, y = _iris()
    clf = MLPClassifier((8,), epochs=3, tol=0.0, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        first = clf.network_
        p1 = first.params.copy()
        clf.fit(X, y)
    assert clf.network_ is first
    assert not np.array_equal(p1, clf.network_.params)
    cold = clone(clf).set_params(warm_start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
    np.testing.assert_array_equal(cold.network_.params, p1)


def test_convergence_warning_when_epochs_exhausted():
    X, y = _iris()
    with pytest.warns(ConvergenceWarning, match="epochs=2"):
        MLPClassifier((4,), epochs=2, random_state=0).fit(X, y)


def test_full_batch_optimizer_and_batch_modes():
    X, y = _iris()
    for bs in (1, "full", 16):
        clf = MLPClassifier((8,), batch_size=bs, epochs=3, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        assert clf.n_iter_ == 3
    clf = MLPClassifier((8,), optimizer="lbfgs", epochs=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.score(X, y) > 0.95


@pytest.mark.parametrize("bad", [
    {"hidden_layer_sizes": (0,)}, {"activation": "swish"}, {"learning_rate": -1.0},
    {"batch_size": 0}, {"batch_size": "half"}, {"epochs": 0}, {"l2": -1.0},
    {"dropout": 1.0}, {"validation_fraction": 0.0}, {"dtype": "float16"},
    {"optimizer": "adamax"}, {"n_iter_no_change": 0},
    {"optimizer": "bfgs", "dropout": 0.2},
])
def test_bad_hyperparameters_raise_clear_errors(bad):
    X, y = _iris()
    clf = MLPClassifier(**bad)  # never raises in __init__ (scikit-learn rule)
    with pytest.raises((ValueError, TypeError)):
        clf.fit(X, y)
    assert not hasattr(clf, "network_")


def test_pipeline_gridsearch_cross_val_score():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(),
                         MLPClassifier((8,), learning_rate=1e-2, epochs=60, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(pipe, X, y, cv=3)
        assert scores.mean() > 0.85
        grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                                   "mlpclassifier__learning_rate": [1e-3, 1e-2]}, cv=3)
        grid.fit(X, y)
    assert set(grid.best_params_) == {"mlpclassifier__hidden_layer_sizes",
                                      "mlpclassifier__learning_rate"}
    assert grid.best_score_ > 0.85


def test_pickle_roundtrip_then_keep_training():
    X, y = _iris()
    clf = MLPClassifier((8,), epochs=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    clone2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone2.predict_proba(X), clf.predict_proba(X))
    # The layers are views of the flat buffer again: training moves predictions.
    before = clone2.predict_proba(X)
    clone2.partial_fit(X, y)
    assert not np.allclose(before, clone2.predict_proba(X))
    dense = clone2.network_.layers[0]
    assert np.shares_memory(dense.W, clone2.network_.params)


def test_float32_dtype():
    X, y = _iris()
    clf = MLPClassifier((8,), dtype="float32", epochs=20, learning_rate=1e-2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.network_.dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32


def test_import_nncore_does_not_import_sklearn():
    code = ("import sys, nncore; sys.exit(1 if 'sklearn' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ})
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- issue 12 item 9

def _sklearn_stop_epoch(values, tol, n_iter_no_change):
    """scikit-learn's MLP rule transcribed (``_update_no_improvement_count`` + the
    ``> n_iter_no_change`` test of ``_fit_stochastic``): the 1-based epoch it stops at."""
    best, count = np.inf, 0
    for epoch, v in enumerate(values, start=1):
        count = count + 1 if v > best - tol else 0
        best = min(best, v)
        if count > n_iter_no_change:
            return epoch
    return None


@pytest.mark.parametrize("early_stopping", [False, True])
def test_n_iter_no_change_is_scikit_learns_rule(early_stopping):
    X, y = _iris()
    clf = MLPClassifier((16,), learning_rate=5e-2, epochs=400, tol=1e-3, n_iter_no_change=3,
                        early_stopping=early_stopping, random_state=0).fit(X, y)
    curve = clf.validation_loss_curve_ if early_stopping else clf.loss_curve_
    assert clf.n_iter_ < 400
    assert _sklearn_stop_epoch(curve, 1e-3, 3) == clf.n_iter_ == len(curve)


def test_n_iter_no_change_inf_runs_every_epoch():
    X, y = _iris()
    clf = MLPClassifier((4,), epochs=15, tol=10.0, n_iter_no_change=np.inf,
                        random_state=0).fit(X, y)
    assert clf.n_iter_ == 15
    with pytest.raises(ValueError, match="n_iter_no_change"):
        MLPClassifier(n_iter_no_change=0).fit(X, y)


def test_partial_fit_after_early_stopped_fit_keeps_finite_best_parameters():
    X, y = _iris()
    clf = MLPClassifier((32,), learning_rate=0.2, early_stopping=True, n_iter_no_change=2,
                        validation_fraction=0.3, epochs=300, random_state=0).fit(X, y)
    assert clf.n_iter_ < 300
    best = clf.network_.params.copy()
    assert np.isfinite(best).all()
    with pytest.warns(ConvergenceWarning, match="early stopping"):
        clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.network_.params, best)
    # not stopped yet: partial_fit continues the same rule and its best parameters
    clf = MLPClassifier((32,), learning_rate=0.2, early_stopping=True, n_iter_no_change=50,
                        validation_fraction=0.3, epochs=3, random_state=0).fit(X, y)
    for _ in range(60):
        clf.partial_fit(X, y)
        assert np.isfinite(clf.network_.params).all()
        if clf._stopped:
            break
    assert len(clf.validation_loss_curve_) == clf.n_iter_ == len(clf.loss_curve_)


def test_warm_start_curves_grow():
    X, y = _iris()
    clf = MLPClassifier((8,), epochs=4, tol=0.0, warm_start=True, early_stopping=True,
                        validation_fraction=0.2, n_iter_no_change=np.inf, random_state=0)
    clf.fit(X, y)
    first_loss, first_val = list(clf.loss_curve_), list(clf.validation_loss_curve_)
    clf.fit(X, y)
    assert clf.n_iter_ == 8 == len(clf.loss_curve_) == len(clf.validation_loss_curve_)
    assert clf.loss_curve_[:4] == first_loss and clf.validation_loss_curve_[:4] == first_val


def test_early_stopping_with_a_class_too_small_to_stratify_raises_as_sklearn():
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = _iris()
    Xb, yb = X[:20], y[:20].copy()
    yb[0] = 1  # binary, class 1 has one sample: scikit-learn's split refuses it
    with pytest.raises(ValueError, match="least populated class"):
        SkMLP(early_stopping=True, max_iter=5).fit(Xb, yb)
    with pytest.raises(ValueError, match="least populated class"):
        MLPClassifier((4,), early_stopping=True, epochs=5).fit(Xb, yb)
    # we also stratify multiclass targets (scikit-learn splits them unstratified),
    # so a lone sample of a third class is refused too, never split silently
    X3, y3 = np.vstack([X, X[:1] + 10]), np.append(y, 3)
    with pytest.raises(ValueError, match="least populated class"):
        MLPClassifier((4,), early_stopping=True, epochs=5).fit(X3, y3)


def test_lbfgs_tol_is_the_gradient_tolerance_as_in_sklearn():
    from sklearn.datasets import make_friedman1
    from sklearn.neural_network import MLPRegressor as SkMLP
    X, y = make_friedman1(n_samples=400, noise=0.0, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    for seed in (0, 1):
        sk = SkMLP(hidden_layer_sizes=(32,), activation="tanh", solver="lbfgs", alpha=0.0,
                   max_iter=200, random_state=seed).fit(X, y)
        ours = MLPRegressor((32,), activation="tanh", optimizer="lbfgs", epochs=200,
                            random_state=seed).fit(X, y)
        assert ours._optimizer.gtol == ours.tol
        # the loss-improvement rule stopped L-BFGS at 77-90 iterations (R² 0.995)
        assert ours.score(X, y) >= sk.score(X, y) - 1e-3


def test_multilabel_indicator_targets():
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(n_samples=200, n_features=8, n_classes=4,
                                          random_state=0)
    clf = MLPClassifier((32,), epochs=200, learning_rate=1e-2, random_state=0).fit(X, Y)
    assert clf.network_.loss_name == "binary_cross_entropy" and clf.network_.n_out == 4
    np.testing.assert_array_equal(clf.classes_, np.arange(4))
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 4)
    # independent per-label sigmoids (rows need not sum to 1), from the logits
    logits = clf.network_.forward(X)
    np.testing.assert_allclose(proba, 1.0 / (1.0 + np.exp(-logits)), rtol=1e-12)
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    # API.md's binary cross-entropy: -1/N sum_n sum_k [d log p + (1 - d) log(1 - p)]
    bce = -np.sum(Y * np.log(proba) + (1 - Y) * np.log1p(-proba)) / len(Y)
    assert clf.network_.loss(X, Y.astype(float)) == pytest.approx(bce, rel=1e-9)
    assert clf.score(X, Y) > 0.5  # subset accuracy on 4 labels (scikit-learn: 0.6-0.7)
    with pytest.raises(ValueError):
        clf.partial_fit(X, Y[:, :3])


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_sparse_csr_input_trains_chunk_by_chunk_like_dense(Est, monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    from nncore import _sparse_rows
    X, y = _iris()
    X = np.where(X > 3.0, X, 0.0)  # mostly zeros
    if Est is MLPRegressor:
        y = X[:, 0] - X[:, 2]
    # chunks of 32 rows (two mini-batches of 16): the set is never densified at once
    monkeypatch.setattr(_sparse_rows, "CHUNK_ELEMENTS", 32 * X.shape[1])
    densified = []
    real_dense = _sparse_rows._dense
    monkeypatch.setattr(_sparse_rows, "_dense",
                        lambda M, rows, dtype: densified.append(len(rows)) or
                        real_dense(M, rows, dtype))
    kw = dict(hidden_layer_sizes=(8,), batch_size=16, shuffle=False, epochs=6, tol=0.0,
              n_iter_no_change=np.inf, learning_rate=1e-2, random_state=0)
    dense = Est(**kw).fit(X, y)
    sparse = Est(**kw).fit(sp.csr_matrix(X), y)
    assert densified and max(densified) <= 32 < X.shape[0]
    # with shuffle=False the mini-batch steps are the dense fit's, in the same order
    np.testing.assert_allclose(sparse.network_.params, dense.network_.params,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X))
    # other sparse formats are converted to CSR; shuffled and early-stopped fits run
    Est(**{**kw, "shuffle": True, "early_stopping": True, "n_iter_no_change": 2,
           "epochs": 30}).fit(sp.csc_matrix(X), y).predict(sp.coo_matrix(X))
    with pytest.raises(ValueError, match="sparse"):
        Est(**{**kw, "batch_size": "full"}).fit(sp.csr_matrix(X), y)
