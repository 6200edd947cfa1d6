"""Hyper-parameter sweeps: ``nc.tune.grid``, ``nc.tune.random``, ``nc.tune.search``.

Design
------
* A *configuration* is a plain dict of hyper-parameters (``KNOWN_KEYS``): the
  network's shape and regularisation (``hidden`` or ``depth``/``width``,
  ``activation``, ``dropout``, ``l1``, ``l2``, ``dtype``, ``loss``) and the
  arguments of ``net.fit`` (``optimizer``, ``lr``, ``batch_size``, ``epochs``,
  ``augment``, ...). Unknown keys are a ``ValueError`` before any trial runs;
  a bad *value* (an unknown activation, ``lr`` with a full-batch optimizer, a
  diverging learning rate) fails only its own trial, which is recorded with its
  error while the sweep goes on.
* A trial is one call of the module-level function ``_run_trial(task, data)``,
  so it pickles by reference and runs on any ``concurrent.futures.Executor``,
  a ``dask.distributed.Client`` or in-process (``executor="serial"``). It returns
  plain data only: a record, the trained parameters as a NumPy array and the
  history dict. The best network is rebuilt in the caller from its
  configuration and parameters; networks are never pickled.
* Reproducibility: trial ``i`` gets the seed ``SeedSequence(seed,
  spawn_key=(i,))`` for both the initialisation and ``fit``; every trial runs
  with one BLAS/OpenMP thread and the caller's backend. So a sweep gives the
  same numbers serially, on local processes or on a Dask cluster.
* The package: ``_space`` (keys, distributions, grid/random, JSON spaces),
  ``_trial`` (building and running one trial), ``_executors`` (where trials
  run), ``_search`` (:func:`search`, successive halving), ``_result``
  (:class:`SearchResult`). The command line ``nncore tune`` lives in
  ``nncore.cli``, which imports this package (never the other way round).
* This package imports only the standard library and NumPy at import time
  (``import nncore`` stays light); pandas, tqdm, threadpoolctl and dask are
  imported when used.
"""

from __future__ import annotations

import sys

from ._result import SearchResult
from ._search import SuccessiveHalving, search
from ._space import (KNOWN_KEYS, Choice, LogUniform, RandInt, Uniform, choice, grid,
                     loguniform, randint, random, space_from_json, uniform)
from ._trial import build

__all__ = [
    "KNOWN_KEYS", "SearchResult", "SuccessiveHalving", "build", "choice", "grid",
    "loguniform", "randint", "random", "search", "uniform", "space_from_json",
    "Uniform", "LogUniform", "RandInt", "Choice",
]


class _TuneModule(type(sys)):
    """Make ``nc.tune(...)`` a shorthand for ``nc.tune.search(...)``.

    API.md says "``nc.tune`` runs a sweep"; the module stays a module (for
    ``nc.tune.grid`` etc.) and calling it runs :func:`search`.
    """

    def __call__(self, *args, **kwargs):
        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _TuneModule
