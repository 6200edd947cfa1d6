"""nncore: train small and medium dense neural networks on a CPU, fast.

The numeric core is compiled Cython (``nncore._kernels``) with a pure-NumPy
twin (``nc.set_backend("numpy")``) that serves as its specification.
"""

from . import _omp_wait  # noqa: F401  (first: bounds OpenMP's spinning before it loads)
from .backend import get_backend, set_backend
from ._config import (get_num_threads, set_flush_denormal, set_num_threads, set_shared_blas_pool,
                      show_config)
from . import plot  # noqa: F401  (nc.plot.compare; matplotlib is imported lazily)
from . import optim, schedules, callbacks, augment  # noqa: F401
from .history import History
from .layers import Dense, Dropout, Residual
from .regularizers import L1, L2, ElasticNet
from .network import Network
from . import errors  # noqa: F401  (nc.errors.InvalidParameterError)
from .errors import DivergenceError
from .gradcheck import gradcheck
from .io import load
from .onnx import to_onnx
from . import datasets  # noqa: F401
from . import tune  # noqa: F401  (stdlib + NumPy only; dask/pandas/tqdm imported on use)

from ._version import __version__

__all__ = [
    "__version__", "get_backend", "set_backend", "set_num_threads", "get_num_threads",
    "set_shared_blas_pool", "set_flush_denormal", "show_config",
    "optim", "schedules", "callbacks", "augment", "plot", "errors", "History",
    "Network", "Dense", "Dropout", "Residual", "L1", "L2", "ElasticNet", "DivergenceError",
    "gradcheck", "load", "to_onnx", "datasets",
    "tune",
]
