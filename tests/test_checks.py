"""One exception policy (nncore._checks): the same mistake raises the same type everywhere.

* a bad hyper-parameter, wrong type or bad value: InvalidParameterError
  (both a ValueError and a TypeError);
* bad data (shape, empty, NaN, range): ValueError and not TypeError;
* data that are not numbers: TypeError and not ValueError.
"""

import math

import numpy as np
import pytest

import nncore as nc
from nncore import _checks, augment, callbacks, datasets, schedules
from nncore.errors import InvalidParameterError

BAD_HYPERPARAMETERS = {
    "Dense n_in float": lambda: nc.Dense(2.5, 3),
    "Dense n_in zero": lambda: nc.Dense(0, 3),
    "Dense n_out bool": lambda: nc.Dense(2, True),
    "Dropout str": lambda: nc.Dropout("half"),
    "Dropout 1": lambda: nc.Dropout(1.0),
    "Dropout nan": lambda: nc.Dropout(math.nan),
    "L2 negative": lambda: nc.L2(-1e-3),
    "L1 str": lambda: nc.L1("big"),
    "ElasticNet inf": lambda: nc.ElasticNet(math.inf, 0.1),
    "Network seed negative": lambda: nc.Network([nc.Dense(2, 1)], seed=-1),
    "Network seed float": lambda: nc.Network([nc.Dense(2, 1)], seed=1.5),
    "Network layers not a list": lambda: nc.Network(5),
    "StepDecay step_size float": lambda: schedules.StepDecay(0.1, step_size=2.5),
    "StepDecay lr zero": lambda: schedules.StepDecay(0.0, step_size=2),
    "Cosine T_max zero": lambda: schedules.CosineAnnealing(0.1, T_max=0),
    "schedule epoch negative": lambda: schedules.ExponentialDecay(0.1, 0.9)(-1),
    "schedule epoch float": lambda: schedules.ExponentialDecay(0.1, 0.9)(1.5),
    "EarlyStopping patience negative": lambda: callbacks.EarlyStopping(patience=-1),
    "EarlyStopping patience float": lambda: callbacks.EarlyStopping(patience=1.5),
    "EarlyStopping restore int": lambda: callbacks.EarlyStopping(restore_best_weights=1),
    "EarlyStopping mode": lambda: callbacks.EarlyStopping(mode="largest"),
    "ReduceLROnPlateau factor 1": lambda: callbacks.ReduceLROnPlateau(factor=1.0),
    "GaussianNoise std negative": lambda: augment.GaussianNoise(-0.1),
    "RandomFlip p": lambda: augment.RandomFlip((2, 2), p=1.5),
    "moons n": lambda: datasets.moons(n=1),
    "moons noise": lambda: datasets.moons(noise=-1.0),
    "SGD lr negative": lambda: nc.optim.SGD(lr=-0.1),
    "SGD momentum 1": lambda: nc.optim.SGD(0.1, momentum=1.0),
    "SGD nesterov int": lambda: nc.optim.SGD(0.1, momentum=0.9, nesterov=1),
    "SGD clip_norm 0": lambda: nc.optim.SGD(0.1, clip_norm=0.0),
    "Adam betas short": lambda: nc.optim.Adam(betas=(0.9,)),
    "Adam beta 1": lambda: nc.optim.Adam(betas=(1.0, 0.999)),
    "Adam eps negative": lambda: nc.optim.Adam(eps=-1e-8),
    "LBFGS history 0": lambda: nc.optim.LBFGS(history=0),
    "set_epoch negative": lambda: nc.optim.SGD(0.1).set_epoch(-1),
    "fit epochs 0": lambda: _fit(epochs=0),
    "fit batch_size 0": lambda: _fit(batch_size=0),
    "fit batch_size float": lambda: _fit(batch_size=2.5),
    "fit shuffle int": lambda: _fit(shuffle=1),
    "fit seed negative": lambda: _fit(seed=-3),
    "fit validation_split 1": lambda: _fit(validation_split=1.0),
    "set_num_threads 0": lambda: nc.set_num_threads(0),
    "gradcheck eps": lambda: nc.gradcheck(nc.Network([nc.Dense(2, 1)]), np.ones((3, 2)),
                                          np.ones(3), eps=2.0),
}


def _fit(**kwargs):
    net = nc.Network([nc.Dense(3, 2)], loss="cross_entropy", seed=0)
    return net.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), progress=False, **kwargs)


@pytest.mark.parametrize("make", BAD_HYPERPARAMETERS.values(), ids=BAD_HYPERPARAMETERS.keys())
def test_bad_hyperparameters_raise_invalid_parameter_error(make):
    with pytest.raises(InvalidParameterError) as info:
        make()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def _net():
    return nc.Network([nc.Dense(3, 2)], loss="cross_entropy", seed=0)


BAD_DATA = {
    "X 1-D": lambda: _net().forward(np.ones(3)),
    "X empty": lambda: _net().forward(np.ones((0, 3))),
    "X NaN": lambda: _net().forward(np.full((2, 3), np.nan)),
    "X wrong width": lambda: _net().forward(np.ones((2, 4))),
    "X beyond float32": lambda: _net().forward(np.full((2, 3), 1e39)),
    "y labels out of range": lambda: _net().loss(np.ones((2, 3)), np.array([0, 5])),
    "y wrong rows": lambda: _net().loss(np.ones((2, 3)), np.array([0, 1, 1])),
    "unknown loss": lambda: nc.Network([nc.Dense(3, 2)], loss="hinge"),
    "unknown activation": lambda: nc.Dense(3, 2, "swishy"),
}


@pytest.mark.parametrize("call", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_raise_value_error(call):
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, TypeError)


NOT_NUMBERS = {
    "X None": lambda: _net().forward(None),
    "X strings": lambda: _net().forward(np.array([["a", "b", "c"]])),
    "y objects": lambda: _net().loss(np.ones((1, 3)), np.array([object()])),
}


@pytest.mark.parametrize("call", NOT_NUMBERS.values(), ids=NOT_NUMBERS.keys())
def test_data_that_are_not_numbers_raise_type_error(call):
    with pytest.raises(TypeError) as info:
        call()
    assert not isinstance(info.value, ValueError)


def test_scalar_checks_normalise_and_bound():
    assert _checks.integer(np.int64(3), "k") == 3 and type(_checks.integer(np.int64(3), "k")) is int
    assert _checks.integer(None, "k", allow_none=True) is None
    assert _checks.real(np.float32(0.5), "x", low=0.0, high=1.0) == 0.5
    assert type(_checks.real(2, "x")) is float
    assert _checks.flag(np.bool_(True), "f") is True
    assert _checks.one_of("min", "mode", ("min", "max")) == "min"
    assert _checks.real(1.0, "x", high=1.0) == 1.0            # closed bound
    for bad in [lambda: _checks.real(1.0, "x", high=1.0, high_open=True),
                lambda: _checks.real(0.0, "x", low=0.0, low_open=True),
                lambda: _checks.real(-1e-300, "x", low=0.0),
                lambda: _checks.real(math.inf, "x"),
                lambda: _checks.real(True, "x"),
                lambda: _checks.integer(1, "k", low=2),
                lambda: _checks.integer(5, "k", high=4),
                lambda: _checks.integer(2.0, "k"),
                lambda: _checks.integer(None, "k"),
                lambda: _checks.flag(1, "f"),
                lambda: _checks.one_of("MIN", "mode", ("min", "max")),
                lambda: _checks.one_of(["min"], "mode", ("min", "max"))]:
        with pytest.raises(InvalidParameterError, match=r"^(x|k|f|mode) must be"):
            bad()


def test_failed_checks_change_nothing():
    net = _net()
    before = net.params.copy()
    with pytest.raises(InvalidParameterError):
        net.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=2.5, progress=False)
    np.testing.assert_array_equal(net.params, before)
