# The flush-denormal switch (nncore.set_flush_denormal): glue around _fp_mode.h,
# included by _kernels.pyx before the epoch loop and the optimizer steps, its users.
#
# Design:
# * Off by default: IEEE semantics, bit-identical to torch.optim (the parity
#   and torch-trajectory suites run with it off).
# * On: the compiled epoch loop (every step of a fit that runs compiled:
#   forward, loss, backward, penalty, update) and the optimizer step kernels
#   (Optimizer.step on the compiled backend) run with FTZ and DAZ set on every
#   thread that does their arithmetic, and put the caller's bits back after.
#   Other kernels (predict, loss evaluations, curvature) keep IEEE.
# * x86-64 only (MXCSR); elsewhere set_flush_denormal(True) returns False and
#   changes nothing, as torch.set_flush_denormal does.
# * With it on results are still the same bits run to run and for any thread
#   count: every thread of a loop flushes, and BLAS jobs take the calling
#   thread's bits (_blas_pool.h).

cdef extern from "_fp_mode.h":
    int nnc_flush_denormal
    enum: NNC_FP_FLUSH_SUPPORTED
    enum: NNC_FP_TEAM_MAX
    unsigned nnc_fp_bits() noexcept nogil
    int nnc_fp_enter(int threads, unsigned* saved) noexcept nogil
    void nnc_fp_leave(int team, unsigned* saved) noexcept nogil
    void nnc_fp_team_bits(int threads, unsigned* out) noexcept nogil


def _set_flush_denormal(bint on):
    """Switch flushing on or off for the loops that start from now; returns whether
    this build and CPU support it (False: nothing changed)."""
    global nnc_flush_denormal
    if not NNC_FP_FLUSH_SUPPORTED:
        return False
    nnc_flush_denormal = 1 if on else 0
    return True


def flush_denormal():
    """Whether the compiled training loops flush subnormals (set_flush_denormal)."""
    return bool(nnc_flush_denormal)


def flush_denormal_supported():
    """Whether this build can flush subnormals (x86-64: MXCSR's FTZ and DAZ)."""
    return bool(NNC_FP_FLUSH_SUPPORTED)


def _thread_flush_bits():
    """The calling thread's MXCSR FTZ/DAZ bits (0x8040 both; tests check nothing leaks)."""
    return nnc_fp_bits()


def _team_flush_bits(int threads):
    """Each thread's FTZ/DAZ bits in an OpenMP team of ``threads`` (tests: nothing leaks)."""
    cdef unsigned out[NNC_FP_TEAM_MAX]
    threads = max(1, min(threads, NNC_FP_TEAM_MAX))
    with nogil:
        nnc_fp_team_bits(threads, out)
    return [out[t] for t in range(threads)]


cdef inline bint _fp_flushing() noexcept nogil:
    """Whether this thread flushes now (DAZ set: by the switch, or by its owner,
    e.g. torch.set_flush_denormal on this thread)."""
    return (nnc_fp_bits() & 0x0040) != 0
