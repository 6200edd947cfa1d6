"""Build of the compiled kernels ``nncore._kernels`` (metadata lives in pyproject.toml).

Environment switches
--------------------
NNCORE_DEBUG=1   debug build: Cython bounds and initialisation checks on.
NNCORE_OPENMP=0  build without OpenMP even when the compiler supports it.

The Cython directives below are the only place they are set. Generated C goes to
``build/cython-{release,debug}/`` so switching builds never reuses stale C, and
the source tree stays free of build output.
"""

import glob
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("NNCORE_DEBUG", "0").strip() not in ("", "0")
WANT_OPENMP = os.environ.get("NNCORE_OPENMP", "1").strip() not in ("", "0")

DIRECTIVES = {
    "language_level": 3,
    "cpow": True,
    "boundscheck": DEBUG,
    "initializedcheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
}

_OMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 ? 0 : 1;
}
"""


def _openmp_flags(compiler):
    """Compile and link a tiny OpenMP program; return (cflags, ldflags) or None."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"]),
                      (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    tmp = tempfile.mkdtemp(prefix="nncore-omp-")
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(_OMP_TEST)
        for cflags, ldflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, os.path.join(tmp, "omp_test"),
                                         extra_postargs=ldflags)
                return cflags, ldflags
            except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Cythonize at build time, probe OpenMP, set optimisation flags."""

    def build_extensions(self):
        import Cython
        from Cython.Build import cythonize
        import numpy

        omp = _openmp_flags(self.compiler) if WANT_OPENMP else None
        msvc = self.compiler.compiler_type == "msvc"
        # -ffp-contract=off: no FMA contraction, so elementwise kernels round exactly
        # like the NumPy reference on every platform. -fno-math-errno only stops
        # sqrt() from setting errno (lets it vectorise); it changes no value.
        cflags = (["/O2"] if msvc else ["-O3", "-ffp-contract=off", "-fno-math-errno"])
        cflags += omp[0] if omp else []
        ldflags = omp[1] if omp else []
        if DEBUG and not msvc:
            cflags += ["-O1", "-g"]
        print(f"nncore: OpenMP {'on' if omp else 'off'}; debug build {'on' if DEBUG else 'off'}",
              file=sys.stderr)

        build_dir = os.path.join("build", "cython-debug" if DEBUG else "cython-release")
        for ext in self.extensions:
            # Keep setuptools' own Extension objects; take only cythonize's C sources.
            (cext,) = cythonize(
                [ext],
                compiler_directives=DIRECTIVES,
                build_dir=build_dir,
                force=True,  # directives may differ from the last build's
                quiet=True,
            )
            ext.sources = cext.sources
            ext.include_dirs.append(numpy.get_include())
            ext.extra_compile_args += cflags
            ext.extra_link_args += ldflags
            ext.define_macros.append(("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"))
            ext.define_macros.append(("NNCORE_DEBUG_BUILD", "1" if DEBUG else "0"))
            ext.define_macros.append(("NNCORE_CYTHON_VERSION", f'"{Cython.__version__}"'))
        super().build_extensions()


# .pxi and .h files are textually included by _kernels.pyx (the headers through
# ``cdef extern from "name.h"``, found on include_dirs since the generated C lives
# under build/); listing them as depends also ships them in the sdist.
_SRC = os.path.join("src", "nncore")
_INCLUDED = sorted(glob.glob(os.path.join(_SRC, "*.pxi")) + glob.glob(os.path.join(_SRC, "*.h")))

setup(
    ext_modules=[Extension("nncore._kernels", ["src/nncore/_kernels.pyx"], depends=_INCLUDED,
                           include_dirs=[_SRC])],
    cmdclass={"build_ext": BuildExt},
)
