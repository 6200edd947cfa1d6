"""sample_weight in the scikit-learn estimators' fit and partial_fit (issue 16 item 4):
integer weights against repeated rows, the network-level fit, sparse input."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from nncore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(seed=0, n=30):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
    w = rng.integers(0, 4, n)
    w[0] = 1
    return X, y, w


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_integer_weights_equal_repeated_rows_full_batch(Est):
    X, y, w = _data()
    kw = dict(hidden_layer_sizes=(5,), optimizer="lbfgs", epochs=15, random_state=0, tol=0.0)
    a = Est(**kw).fit(X, y, sample_weight=w)
    b = Est(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(a.network_.params, b.network_.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)


def test_unit_weights_are_the_unweighted_fit():
    X, y, w = _data(1)
    kw = dict(hidden_layer_sizes=(6,), epochs=3, batch_size=8, random_state=3,
              n_iter_no_change=1000)
    plain = MLPRegressor(**kw).fit(X, y)
    ones = MLPRegressor(**kw).fit(X, y, sample_weight=np.ones(len(y)))
    scalar = MLPRegressor(**kw).fit(X, y, sample_weight=2.0)       # scikit-learn: a scalar
    np.testing.assert_array_equal(ones.network_.params, plain.network_.params)
    np.testing.assert_array_equal(scalar.network_.params, plain.network_.params)
    weighted = MLPRegressor(**kw).fit(X, y, sample_weight=w * 0.5 + 0.1)
    assert not np.allclose(weighted.network_.params, plain.network_.params)


def test_partial_fit_weights_equal_repeated_rows_for_batch_one_full_set():
    X, y, w = _data(2)
    kw = dict(hidden_layer_sizes=(5,), batch_size=1000, random_state=0, shuffle=False)
    a, b = MLPClassifier(**kw), MLPClassifier(**kw)
    for _ in range(3):
        a.partial_fit(X, y, classes=[0, 1, 2], sample_weight=w)
        b.partial_fit(np.repeat(X, w, axis=0), np.repeat(y, w), classes=[0, 1, 2])
    np.testing.assert_allclose(a.network_.params, b.network_.params, rtol=1e-9, atol=1e-12)


def test_sparse_weighted_equals_dense():
    sp = pytest.importorskip("scipy.sparse")
    X, y, w = _data(3, n=40)
    X[X < 0.3] = 0.0
    sw = w + 0.5
    kw = dict(hidden_layer_sizes=(5,), batch_size=4, epochs=3, random_state=0, shuffle=False,
              n_iter_no_change=1000)
    a = MLPClassifier(**kw).fit(sp.csr_matrix(X), y, sample_weight=sw)
    b = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(a.network_.params, b.network_.params, rtol=1e-12, atol=1e-14)


def test_early_stopping_validation_loss_is_weighted():
    X, y, w = _data(4, n=60)
    sw = w + 0.25
    clf = MLPClassifier((5,), epochs=3, early_stopping=True, random_state=0,
                        n_iter_no_change=1000).fit(X, y, sample_weight=sw)
    assert len(clf.validation_loss_curve_) == 3


@pytest.mark.parametrize("sw,exc", [(np.ones(3), ValueError), (-np.ones(30), ValueError),
                                    (np.full(30, np.nan), ValueError)])
def test_bad_sample_weight(sw, exc):
    X, y, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(exc):
            MLPClassifier((4,), epochs=1).fit(X, y, sample_weight=sw)
