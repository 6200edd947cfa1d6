"""float64 data beyond the float32 range given to a float32 estimator (issue 12
item 4): every entry point (fit, partial_fit, predict, predict_proba,
predict_log_proba, score) raises the ValueError Network.fit raises for the
same data, before any cast (no overflow warning) and with the estimator
unchanged."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
sp = pytest.importorskip("scipy.sparse")

import nncore as nc  # noqa: E402
from nncore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

BIG = 1e39          # finite in float64, inf in float32 (largest ~3.4e38)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]), (X[:, 0] > 0).astype(int)


def _huge(X, row=7, col=1):
    out = X.copy()
    out[row, col] = -BIG
    return out


def _network_message(X, y, loss, n_out):
    """What Network.fit of a float32 network says about the same data."""
    net = nc.Network([nc.Dense(3, 4, "relu"), nc.Dense(4, n_out)], loss=loss,
                     dtype="float32", seed=0)
    with pytest.raises(ValueError) as info:
        net.fit(X, y, epochs=1, progress=False)
    return str(info.value)


def _estimators():
    kw = dict(hidden_layer_sizes=(4,), dtype="float32", epochs=3, random_state=0)
    return [(MLPRegressor(**kw), "mse", 1, 1), (MLPClassifier(**kw), "cross_entropy", 2, 2)]


def _state(est):
    keep = ("n_features_in_", "n_iter_", "loss_curve_", "classes_")
    state = {k: np.array(getattr(est, k)).copy() for k in keep if hasattr(est, k)}
    if hasattr(est, "network_"):
        state["params"] = est.network_.params.copy()
        state["network"] = id(est.network_)
    return state


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _raises_unchanged(est, call, expected):
    before = _state(est)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)       # no cast overflow warning
        with pytest.raises(ValueError) as info:
            call()
    assert str(info.value) == expected
    _same_state(before, _state(est))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("sparse", [False, True])
def test_huge_X_is_the_network_error_before_anything_changes(which, sparse):
    X, y_reg, y_clf = _data()
    est, loss, n_out, _ = _estimators()[which]
    y = y_reg if which == 0 else y_clf
    X_huge = _huge(X)
    expected = _network_message(X_huge, y if which == 0 else y, loss, n_out)
    assert "1e+39" in expected and "float32" in expected
    given = sp.csr_matrix(X_huge) if sparse else X_huge
    # unfitted: fit and partial_fit leave no fitted attribute behind
    _raises_unchanged(est, lambda: est.fit(given, y), expected)
    assert not hasattr(est, "n_features_in_")
    first = {} if which == 0 else {"classes": [0, 1]}
    _raises_unchanged(est, lambda: est.partial_fit(given, y, **first), expected)
    # fitted: nothing changes (parameters, curves, n_features_in_)
    est.fit(X, y)
    calls = [lambda: est.fit(given, y), lambda: est.partial_fit(given, y),
             lambda: est.predict(given), lambda: est.score(given, y)]
    if which == 1:
        calls += [lambda: est.predict_proba(given), lambda: est.predict_log_proba(given)]
    for call in calls:
        _raises_unchanged(est, call, expected)
    est.set_params(warm_start=True)
    _raises_unchanged(est, lambda: est.fit(given, y), expected)


def test_huge_regression_targets():
    X, y, _ = _data()
    y_huge = y.copy()
    y_huge[5] = BIG
    expected = _network_message(X, y_huge[:, None], "mse", 1)
    assert expected.startswith("y has values up to 1e+39")
    est = MLPRegressor((4,), dtype="float32", epochs=3, random_state=0)
    _raises_unchanged(est, lambda: est.fit(X, y_huge), expected)
    _raises_unchanged(est, lambda: est.partial_fit(X, y_huge), expected)
    est.fit(X, y)
    _raises_unchanged(est, lambda: est.partial_fit(X, y_huge), expected)


def test_float64_estimators_take_the_same_data():
    X, y, labels = _data()
    X_huge = _huge(X)                       # 1e39: fine in float64
    reg = MLPRegressor((4,), dtype="float64", epochs=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # ConvergenceWarning
        reg.fit(X_huge, y)
        MLPClassifier((4,), dtype="float64", epochs=2, random_state=0).fit(X_huge, labels)
    assert np.isfinite(reg.predict(X)).all()
