# The compiled epoch loop (included at the end of _kernels.pyx: same module, so
# it calls the cdef kernels above directly).
#
# Design:
# * One call runs the mini-batches ``state["step"] .. stop-1`` of an epoch with
#   the GIL released and no Python per step: gather rows by the epoch's order ->
#   forward through every layer (GEMM, fused bias + activation; dropout from the
#   counter-based generator) -> loss and output gradient -> backward -> penalty
#   gradient -> optional clipping -> coupled decay -> fused optimizer update.
# * It is the *same sequence of kernel calls* as the Python-orchestrated
#   reference (``nncore.backend._epoch.reference_epoch``, which is what
#   ``Network.fit`` does per step), calling the very kernels the backend
#   wrappers call, with every scalar (Adam's bias corrections, Adagrad's
#   decayed rate, the clipping factor) computed in double exactly as the
#   Python code computes it. So parameters and optimizer state are bit-identical
#   to the per-step path (tests/test_train_loop.py).
# * Elementwise work that is split across threads (bias + activation by rows)
#   gives the same bits for any split, so the thread count never changes a
#   result; reductions (db, losses) are single-threaded in row order as in the
#   kernels.
# * One thread pool: with 2+ threads, OpenBLAS's parallel jobs run on this
#   module's OpenMP team (_blas_pool.pxi / _blas_pool.h, with its off switch),
#   so the update and other elementwise loops can be threaded from 64K
#   elements (BLAS_POOL_PAR_MIN) instead of 4M. Same bits either way.
# * The Adam update is C (_adam.h): multiversioned, with the frozen-lane path
#   for subnormal moments.
# * All buffers are preallocated by the wrapper (nncore.backend._cython) and
#   validated by nncore.backend._epoch.check_train_epoch before the GIL is
#   released: the loop allocates nothing, raises nothing, and every index it
#   forms was range-checked.
# * Progress lives in a small C struct that is copied back into the caller's
#   ``state`` dict before returning, so a Ctrl-C (delivered when the call
#   returns to Python) never separates parameters from the step count.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isfinite, pow as c_pow
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from "_adam.h":
    void nnc_adam_f32(float* p, const float* g, float* m, float* v, float* backup,
                      Py_ssize_t lo, Py_ssize_t hi, float decay, float w, float omw,
                      float beta2, float omb2, float bc2, float sqrt_bc2, float eps,
                      float neg_step, float grad_scale, int lerp_small, int eps_inside,
                      uint32_t kmax, uint32_t kvmax, float pthr) noexcept nogil
    void nnc_adam_f64(double* p, const double* g, double* m, double* v, double* backup,
                      Py_ssize_t lo, Py_ssize_t hi, double decay, double w, double omw,
                      double beta2, double omb2, double bc2, double sqrt_bc2, double eps,
                      double neg_step, double grad_scale, int lerp_small, int eps_inside,
                      uint64_t kmax, uint64_t kvmax, double pthr) noexcept nogil
    void nnc_adam_freeze(int is_f32, double w, double omw, int lerp_small, double beta2,
                         double eps, int eps_inside, double neg_step, uint64_t* kmax,
                         uint64_t* kvmax, double* pthr) noexcept nogil


cdef enum:
    TL_DENSE = 0
    TL_DROPOUT = 1

    TL_MSE = 0
    TL_CE = 1          # softmax cross-entropy, integer labels
    TL_CE_PROB = 2     # softmax cross-entropy, probability rows
    TL_BCE = 3

    TL_SGD = 0
    TL_ADAGRAD = 1
    TL_RMSPROP = 2
    TL_ADAM = 3

# The optimizers this loop runs, by the ``kind`` of their lowering
# (nncore.optim.Optimizer.fused_update): kind -> (code, the hyper-parameters
# train_epoch_loop reads by name, the numbers of state buffers it accepts).
LOOP_OPTIMIZERS = {
    "sgd": (TL_SGD, ("lr", "clip_norm", "weight_decay", "momentum", "dampening", "nesterov"),
            (0, 1)),
    "adagrad": (TL_ADAGRAD, ("lr", "clip_norm", "weight_decay", "eps", "lr_decay",
                             "eps_inside_sqrt"), (1,)),
    "rmsprop": (TL_RMSPROP, ("lr", "clip_norm", "weight_decay", "alpha", "eps",
                             "eps_inside_sqrt"), (1,)),
    "adam": (TL_ADAM, ("lr", "clip_norm", "weight_decay", "beta1", "beta2", "eps",
                       "eps_inside_sqrt", "decoupled_weight_decay"), (2,)),
}

# Flat loops inside the epoch loop use OpenMP only from this many elements on.
cdef Py_ssize_t TL_PAR_MIN = 1 << 22
# Epoch loops running now (any Python thread), and the parallel threshold the
# first one found (restored when the last one ends).
cdef int _tl_depth = 0
cdef Py_ssize_t _tl_saved_par_min = 0

# A call returns to Python after the step during which this much wall time has
# passed, whatever ``stop`` says, so a Ctrl-C (handled by Python between calls)
# lands within about this long plus one step, on a quiet or a busy machine.
# Where a call stops never changes a bit (tests/test_train_loop.py).
cdef double _tl_chunk_seconds = 0.1


def _set_chunk_seconds(double seconds):
    """Wall time after which a call of the epoch loop returns; returns the old value
    (tests set 0: one step per call)."""
    global _tl_chunk_seconds
    old = _tl_chunk_seconds
    _tl_chunk_seconds = seconds
    return old


cdef inline double _monotonic_seconds() noexcept nogil:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return <double>now.tv_sec + 1e-9 * <double>now.tv_nsec


# torch.nn.utils.clip_grad_norm_ adds this to the norm (as nncore.optim does).
cdef double TL_CLIP_EPS = 1e-6


cdef struct TLLayer:
    int kind
    int n_in
    int n_out
    int act
    Py_ssize_t w_off          # W at params[w_off : w_off + n_in*n_out], b right after
    Py_ssize_t b_off
    double rate
    void* out                 # (B, n_out) outputs of this layer
    void* mask                # (B, n_out) dropout mask (dropout only)
    void* dx                  # (B, n_in) input gradient; NULL for the first Dense
    void* inp                 # the input this layer saw in the current step


cdef struct TLOpt:
    int kind
    double lr
    double clip               # 0: no clipping
    double wd                 # coupled weight decay (grad + wd * param)
    double momentum
    double dampening
    bint nesterov
    double eps
    double lr_decay
    bint inside               # eps_inside_sqrt
    double alpha
    double beta1
    double beta2
    double decoupled          # AdamW's decay


cdef struct TLState:
    Py_ssize_t step           # next batch of the epoch
    int64_t opt_step          # optimizer updates taken so far
    uint64_t counter          # dropout counter
    double loss_sum
    int64_t correct
    double loss               # the last step's loss
    double grad_norm
    bint have_grad_norm
    bint diverged
    bint have_backup


cdef inline void _tl_gather(const floating_in* X, Py_ssize_t d, const int64_t* idx,
                            Py_ssize_t r, floating* out) noexcept nogil:
    """out[i, :] := X[idx[i], :] (exact copy or C conversion, as gather_rows_k)."""
    cdef Py_ssize_t i, j
    cdef const floating_in* src
    cdef floating* dst
    for i in range(r):
        src = X + idx[i] * d
        dst = out + i * d
        if sizeof(floating_in) == sizeof(floating):
            memcpy(dst, src, d * sizeof(floating))
        else:
            for j in range(d):
                dst[j] = <floating>src[j]


cdef inline void _tl_gather_t(const void* T, bint t_double, Py_ssize_t k,
                              const int64_t* idx, Py_ssize_t r, floating* out) noexcept nogil:
    """out[i, :] := T[idx[i], :] for float32 or float64 targets (as gather_rows_k)."""
    cdef Py_ssize_t i, j
    cdef const double* s64
    cdef const float* s32
    cdef floating* dst
    for i in range(r):
        dst = out + i * k
        if t_double:
            s64 = <const double*>T + idx[i] * k
            for j in range(k):
                dst[j] = <floating>s64[j]
        else:
            s32 = <const float*>T + idx[i] * k
            for j in range(k):
                dst[j] = <floating>s32[j]


cdef inline Py_ssize_t _tl_argmax(const floating* x, Py_ssize_t k) noexcept nogil:
    """numpy.argmax of a row: the first maximum, or the first NaN."""
    cdef Py_ssize_t j, best = 0
    cdef floating m = x[0]
    if m != m:
        return 0
    for j in range(1, k):
        if x[j] != x[j]:
            return j
        if x[j] > m:
            m = x[j]
            best = j
    return best


cdef int64_t _tl_count(int loss, const floating* out, const floating* t,
                       const int64_t* lab, Py_ssize_t r, Py_ssize_t k) noexcept nogil:
    """Correct predictions in a batch (rows; entries for BCE), as Network._count_correct."""
    cdef Py_ssize_t i
    cdef int64_t c = 0
    if loss == TL_BCE:
        for i in range(r * k):
            c += (out[i] >= 0) == (t[i] >= 0.5)
        return c
    for i in range(r):
        if loss == TL_CE:
            c += _tl_argmax(out + i * k, k) == lab[i]
        else:
            c += _tl_argmax(out + i * k, k) == _tl_argmax(t + i * k, k)
    return c


cdef inline void _tl_bias_act(floating* out, const floating* b, Py_ssize_t r, Py_ssize_t k,
                              int act) noexcept nogil:
    """out := f(out + b), rows split over threads only for large blocks (same bits)."""
    cdef Py_ssize_t c
    cdef int nt = _threads_for(r * k)
    if nt == 1 or r < nt:
        _bias_act_rows(out, b, 0, r, k, act)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _bias_act_rows(out, b, (r * c) // nt, (r * (c + 1)) // nt, k, act)


# Frozen-lane recognition in the Adam loop (see the C block above). It never
# changes a bit; the switch exists so tests can run both paths.
cdef bint _adam_freeze = True


def _set_adam_freeze(bint on):
    """Switch the frozen-lane path of the Adam kernel; returns the previous setting."""
    global _adam_freeze
    old = _adam_freeze
    _adam_freeze = on
    return old


cdef inline void _tl_adam_chunk(floating[::1] p, const floating[::1] g, floating[::1] m,
                                floating[::1] v, floating* bk, Py_ssize_t lo, Py_ssize_t hi, double decay,
                                double w, double omw, bint lerp_small, double beta2,
                                double omb2, double bc2, double sqrt_bc2, double eps,
                                double neg_step, bint inside, double gscale, uint64_t kmax,
                                uint64_t kvmax, double pthr) noexcept nogil:
    # Scalars rounded to the array dtype first, as the other update kernels do.
    if floating is float:
        nnc_adam_f32(&p[0], &g[0], &m[0], &v[0], bk, lo, hi, <float>decay, <float>w, <float>omw,
                     <float>beta2, <float>omb2, <float>bc2, <float>sqrt_bc2, <float>eps,
                     <float>neg_step, <float>gscale, lerp_small, inside, <uint32_t>kmax,
                     <uint32_t>kvmax, <float>pthr)
    else:
        nnc_adam_f64(&p[0], &g[0], &m[0], &v[0], bk, lo, hi, decay, w, omw, beta2, omb2, bc2,
                     sqrt_bc2, eps, neg_step, gscale, lerp_small, inside, kmax, kvmax, pthr)


cdef void _tl_adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                   floating* bk, double decay, double w, double omw, bint lerp_small, double beta2,
                   double omb2, double bc2, double sqrt_bc2, double eps, double neg_step,
                   bint inside, double gscale) noexcept nogil:
    """p *= 1 − lr·wd;  m := lerp(m, g, 1−β1);  v := β2 v + (1−β2) g²;
    p −= (lr/bc1) · m / (√v/√bc2 + ε), through the multiversioned C loop;
    with ``bk`` it also copies the parameters there before updating them."""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef uint64_t kmax, kvmax
    cdef double pthr
    # Frozen-lane thresholds from the scalars as the kernel sees them.
    if floating is float:
        nnc_adam_freeze(1, <float>w, <float>omw, lerp_small, <float>beta2, <float>eps, inside,
                        <float>neg_step, &kmax, &kvmax, &pthr)
    else:
        nnc_adam_freeze(0, w, omw, lerp_small, beta2, eps, inside, neg_step, &kmax, &kvmax,
                        &pthr)
    if not _adam_freeze:
        kmax = 0
    if nt == 1:     # no OpenMP region at all for small buffers
        _tl_adam_chunk(p, g, m, v, bk, 0, n, decay, w, omw, lerp_small, beta2, omb2, bc2,
                       sqrt_bc2, eps, neg_step, inside, gscale, kmax, kvmax, pthr)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _tl_adam_chunk(p, g, m, v, bk, _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n), decay, w,
                           omw, lerp_small, beta2, omb2, bc2, sqrt_bc2, eps, neg_step, inside,
                           gscale, kmax, kvmax, pthr)


cdef bint _tl_all_finite(const floating* p, Py_ssize_t n) noexcept nogil:
    """No inf or NaN in p[0:n]: x - x is exactly 0 for finite x, NaN otherwise. One
    pass without an early exit, in the array's own type, so it vectorises (a
    small cost next to a step)."""
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef floating zero_or_nan
    for i in range(n):
        zero_or_nan = p[i] - p[i]
        bad |= zero_or_nan != zero_or_nan
    return bad == 0


cdef void _tl_update(TLOpt* o, TLState* st, floating[::1] params, floating[::1] grads,
                     floating[::1] buf1, floating[::1] buf2, floating[::1] scratch,
                     floating[::1] gv, floating* bk) noexcept nogil:
    """One optimizer step, as nncore.optim's step() + the backend wrappers compute it.

    ``gv`` is what the update kernel reads: ``grads``, or ``scratch`` (which
    receives the clipped gradient plus the coupled decay) when ``o.wd != 0``.
    The parameters are first saved to ``bk`` (inside Adam's pass, which reads
    them anyway; a copy for the others)."""
    cdef double gs = 1.0, norm, x, decay, w, bc1, bc2, clr
    cdef Py_ssize_t i, n = params.shape[0]
    cdef floating* S
    cdef const floating* G = &grads[0]
    cdef const floating* P = &params[0]
    cdef floating fgs, fwd
    cdef bint coupled = o.wd != 0.0
    st.opt_step += 1
    if o.clip > 0.0:
        norm = sqrt(sum_squares_k(grads))
        st.grad_norm = norm
        st.have_grad_norm = True
        x = o.clip / (norm + TL_CLIP_EPS)
        gs = x if x < 1.0 else 1.0          # min(1.0, x), NaN -> 1.0 as Python's min
    if coupled:
        # torch's grad + wd * param after clipping, in scratch (grads stay intact).
        S = &scratch[0]
        if gs == 1.0:
            memcpy(S, G, n * sizeof(floating))
        else:
            fgs = <floating>gs
            for i in range(n):
                S[i] = G[i] * fgs
        fwd = <floating>o.wd
        for i in range(n):
            S[i] = S[i] + fwd * P[i]
        gs = 1.0
    if o.kind != TL_ADAM:
        memcpy(bk, P, n * sizeof(floating))
    if o.kind == TL_SGD:
        sgd_k(params, gv, buf1, o.lr, o.momentum, o.dampening,
              o.nesterov, st.opt_step == 1, gs)
    elif o.kind == TL_ADAGRAD:
        clr = o.lr / (1.0 + <double>(st.opt_step - 1) * o.lr_decay)
        adagrad_k(params, gv, buf1, clr, o.eps, o.inside, gs)
    elif o.kind == TL_RMSPROP:
        rmsprop_k(params, gv, buf1, o.lr, o.alpha, o.eps,
                  o.inside, gs)
    else:
        # The scalars of nncore.backend._cython.adam_step, in the same order.
        decay = 1.0 - o.lr * o.decoupled if o.decoupled != 0.0 else 1.0
        w = 1.0 - o.beta1
        bc1 = 1.0 - c_pow(o.beta1, <double>st.opt_step)
        bc2 = 1.0 - c_pow(o.beta2, <double>st.opt_step)
        _tl_adam(params, gv, buf1, buf2, bk, decay, w, 1.0 - w,
               w < 0.5, o.beta2, 1.0 - o.beta2, bc2, c_pow(bc2, 0.5), o.eps,
               -(o.lr / bc1), o.inside, gs)


cdef void _tl_run(const floating_in[:, ::1] X, const int64_t* labels, const void* T,
                  bint t_double, const int64_t[::1] order, Py_ssize_t B, Py_ssize_t stop,
                  floating[::1] params, floating[::1] grads, TLLayer* L, int nl, int loss,
                  const int64_t[:, ::1] segments, double l1, double l2, bint has_reg,
                  TLOpt* o, floating[::1] buf1, floating[::1] buf2, floating[::1] scratch,
                  floating[::1] backup, floating* xbuf, floating[:, ::1] tbuf,
                  int64_t[::1] lbuf, floating[:, ::1] logits, floating[:, ::1] gout,
                  uint64_t seed, bint count, TLState* st) noexcept nogil:
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = gout.shape[1]
    cdef Py_ssize_t j, s, r, i, li, tot
    cdef floating* P = &params[0]
    cdef floating* G = &grads[0]
    cdef floating* h
    cdef floating* g
    cdef floating* out
    cdef TLLayer* Lp
    cdef const int64_t* idx
    cdef double J, pen, lossv
    cdef double deadline = _monotonic_seconds() + _tl_chunk_seconds
    cdef int64_t c = 0
    for j in range(st.step, stop):
        s = j * B
        r = (n - s) if n - s < B else B
        idx = &order[s]
        # ---- batch: rows (converted to the network dtype) and targets
        _tl_gather(&X[0, 0], d, idx, r, xbuf)
        if loss == TL_CE:
            for i in range(r):
                lbuf[i] = labels[idx[i]]
        else:
            _tl_gather_t(T, t_double, K, idx, r, &tbuf[0, 0])
        # ---- forward
        h = xbuf
        for li in range(nl):
            Lp = &L[li]
            Lp.inp = h
            out = <floating*>Lp.out
            if Lp.kind == TL_DENSE:
                _gemm_rm(False, False, <int>r, Lp.n_out, Lp.n_in, 1, h, Lp.n_in,
                         P + Lp.w_off, Lp.n_out, 0, out, Lp.n_out)
                _tl_bias_act(out, P + Lp.b_off, r, Lp.n_out, Lp.act)
            else:
                tot = r * Lp.n_out
                _dropout_chunk(seed, st.counter, Lp.rate, <floating>(1.0 / (1.0 - Lp.rate)),
                               <floating*>Lp.mask, 0, tot)
                st.counter += <uint64_t>tot
                _multiply_chunk(h, <floating*>Lp.mask, out, 0, tot)
            h = out
        # ---- loss and its output gradient (h is the logits buffer)
        if loss == TL_MSE:
            J = loss_mse_k(logits[:r], tbuf[:r], gout[:r], True)
        elif loss == TL_CE:
            J = loss_softmax_ce_k(logits[:r], lbuf[:r], gout[:r], True)
        elif loss == TL_CE_PROB:
            J = loss_softmax_ce_prob_k(logits[:r], tbuf[:r], gout[:r], True)
        else:
            J = loss_bce_k(logits[:r], tbuf[:r], gout[:r], True)
        if count:
            c = _tl_count(loss, h, &tbuf[0, 0], &lbuf[0], r, K)
        # ---- backward
        g = &gout[0, 0]
        for li in range(nl - 1, -1, -1):
            Lp = &L[li]
            if Lp.kind == TL_DENSE:
                # delta := g * f'(Y), db := column sums; dW := inpᵀ delta; dX := delta Wᵀ
                _delta_rows(<floating*>Lp.out, g, Lp.act, r, Lp.n_out, G + Lp.b_off)
                _gemm_rm(True, False, Lp.n_in, Lp.n_out, <int>r, 1, <floating*>Lp.inp,
                         Lp.n_in, g, Lp.n_out, 0, G + Lp.w_off, Lp.n_out)
                if Lp.dx == NULL:
                    break
                _gemm_rm(False, True, <int>r, Lp.n_in, Lp.n_out, 1, g, Lp.n_out,
                         P + Lp.w_off, Lp.n_out, 0, <floating*>Lp.dx, Lp.n_in)
                g = <floating*>Lp.dx
            else:
                _multiply_chunk(g, <floating*>Lp.mask, g, 0, r * Lp.n_out)
        # ---- penalty, divergence check, update
        pen = 0.0
        if has_reg:
            pen = regularize_k(params, grads, segments, l1, l2, True)
        lossv = J + pen
        st.loss = lossv
        if not isfinite(lossv):
            st.diverged = True
            st.step = j
            return
        st.have_backup = True
        if o.wd != 0.0:
            _tl_update(o, st, params, grads, buf1, buf2, scratch, scratch, &backup[0])
        else:
            _tl_update(o, st, params, grads, buf1, buf2, scratch, grads, &backup[0])
        if not _tl_all_finite(P, params.shape[0]):
            # The update overflowed (or the gradient was not finite): stop at this
            # step; the backup holds the parameters its finite loss was computed at.
            st.diverged = True
            st.step = j
            return
        st.loss_sum += lossv
        st.correct += c
        st.step = j + 1
        if _monotonic_seconds() >= deadline:
            return


def train_epoch_loop(const floating_in[:, ::1] X, object T, const int64_t[::1] order,
                     Py_ssize_t batch_size, Py_ssize_t stop,
                     floating[::1] params, floating[::1] grads, list ops, int loss,
                     const int64_t[:, ::1] segments, double l1, double l2,
                     int opt_kind, dict hyper, tuple opt_buffers,
                     floating[::1] scratch, floating[::1] backup, floating[:, ::1] xbuf,
                     floating[:, ::1] tbuf, int64_t[::1] lbuf, floating[:, ::1] logits,
                     floating[:, ::1] gout, uint64_t seed, dict state):
    """Run batches ``state["step"] .. stop-1`` of an epoch (see _train_loop.pxi),
    or fewer: it returns after the step during which ``_tl_chunk_seconds`` passed.

    Called only by nncore.backend._cython.train_epoch after
    nncore.backend._epoch.check_train_epoch. ``ops``: one tuple per active
    layer ``(kind, n_in, n_out, act, w_off, rate, out, mask, dx)``; ``opt_kind``
    a code of LOOP_OPTIMIZERS, ``hyper`` the hyper-parameters it names (by
    name; clip_norm 0 = no clipping), ``opt_buffers`` the optimizer's state
    arrays. ``state`` is updated in place.
    """
    global _par_min, _tl_depth, _tl_saved_par_min
    cdef TLLayer* L
    cdef TLLayer* Lp
    cdef bint entered = False, shared
    cdef TLOpt o
    cdef TLState st
    cdef int nl = len(ops), li
    cdef const int64_t[::1] lab
    cdef const float[:, ::1] t32
    cdef const double[:, ::1] t64
    cdef const int64_t* labels = NULL
    cdef const void* tp = NULL
    cdef floating[:, ::1] mv
    cdef floating[::1] buf1, buf2
    cdef bint t_double = False
    cdef bint has_reg = l1 != 0.0 or l2 != 0.0
    cdef bint count = bool(state["count"])
    if loss == TL_CE:
        lab = T
        labels = &lab[0]
    elif T.dtype.itemsize == 8:
        t64 = T
        tp = &t64[0, 0]
        t_double = True
    else:
        t32 = T
        tp = &t32[0, 0]
    # Hyper-parameters by name; those the optimizer's kind does not read stay 0.
    o.kind = opt_kind
    o.lr = hyper["lr"]
    o.clip = hyper["clip_norm"]
    o.wd = hyper["weight_decay"]
    o.momentum = hyper.get("momentum", 0.0)
    o.dampening = hyper.get("dampening", 0.0)
    o.nesterov = hyper.get("nesterov", False)
    o.eps = hyper.get("eps", 0.0)
    o.lr_decay = hyper.get("lr_decay", 0.0)
    o.inside = hyper.get("eps_inside_sqrt", False)
    o.alpha = hyper.get("alpha", 0.0)
    o.beta1 = hyper.get("beta1", 0.0)
    o.beta2 = hyper.get("beta2", 0.0)
    o.decoupled = hyper.get("decoupled_weight_decay", 0.0)
    # Unused buffer slots hold params: never touched by the kinds that do not read them.
    buf1 = opt_buffers[0] if len(opt_buffers) > 0 else params
    buf2 = opt_buffers[1] if len(opt_buffers) > 1 else params
    st.step = state["step"]
    st.opt_step = state["opt_step"]
    st.counter = state["counter"] % (1 << 64)
    st.loss_sum = state["loss_sum"]
    st.correct = state["correct"]
    st.loss = state["loss"]
    st.grad_norm = 0.0
    st.have_grad_norm = False
    st.diverged = False
    st.have_backup = state["have_backup"]
    L = <TLLayer*>PyMem_Malloc(max(nl, 1) * sizeof(TLLayer))
    if L == NULL:
        raise MemoryError()
    try:
        for li in range(nl):
            Lp = &L[li]
            kind, n_in, n_out, act, w_off, rate, out, mask, dx = ops[li]
            Lp.kind = kind
            Lp.n_in = n_in
            Lp.n_out = n_out
            Lp.act = act
            Lp.w_off = w_off
            Lp.b_off = w_off + <Py_ssize_t>n_in * n_out
            Lp.rate = rate
            Lp.inp = NULL
            mv = out     # the arrays stay alive in ``ops`` for the whole call
            Lp.out = <void*>&mv[0, 0]
            Lp.mask = NULL
            Lp.dx = NULL
            if mask is not None:
                mv = mask
                Lp.mask = <void*>&mv[0, 0]
            if dx is not None:
                mv = dx
                Lp.dx = <void*>&mv[0, 0]
        # Between two multi-threaded BLAS calls an OpenMP region makes the two
        # thread pools fight (libgomp's workers spin after the region while
        # OpenBLAS wants every core, and vice versa), which costs far more than
        # a mid-sized update gains from a second thread. So inside the loop the
        # flat loops (optimizer update, penalty, masks) go parallel only when
        # they are huge; BLAS threads the GEMMs. The split never changes a bit.
        # (A depth count keeps concurrent loops in other threads consistent.)
        entered = True
        shared = _blas_pool_enter(_omp_threads())
        _tl_depth += 1
        if _tl_depth == 1:
            _tl_saved_par_min = _par_min
            _par_min = BLAS_POOL_PAR_MIN if shared else max(_par_min, TL_PAR_MIN)
        with nogil:
            _tl_run(X, labels, tp, t_double, order, batch_size, stop, params, grads, L, nl,
                    loss, segments, l1, l2, has_reg, &o, buf1, buf2, scratch, backup,
                    &xbuf[0, 0], tbuf, lbuf, logits, gout, seed, count, &st)
    finally:
        if entered:
            _tl_depth -= 1
            if _tl_depth == 0:
                _par_min = _tl_saved_par_min
            _blas_pool_leave()
        PyMem_Free(L)
    state["step"] = st.step
    state["opt_step"] = st.opt_step
    state["counter"] = st.counter
    state["loss_sum"] = st.loss_sum
    state["correct"] = st.correct
    state["loss"] = st.loss
    if st.have_grad_norm:
        state["grad_norm"] = st.grad_norm
    state["diverged"] = st.diverged
    state["have_backup"] = st.have_backup


def adam_step(floating[::1] params, const floating[::1] grads, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, double decay, double w, double omw,
              bint lerp_small, double beta2, double omb2, double bc2, double sqrt_bc2,
              double eps, double neg_step, bint eps_inside_sqrt, double gscale):
    """Adam/AdamW step through the multiversioned C loop: AVX-512/AVX2 where the
    CPU has them, so the update is not bound by SSE2's sqrt/div throughput
    (1e7 float32 on one thread: ~6.4 ms vs ~11 ms for the SSE2 build)."""
    if params.shape[0] == 0:
        return
    with nogil:
        _tl_adam(params, grads, exp_avg, exp_avg_sq, NULL, decay, w, omw, lerp_small, beta2,
                 omb2, bc2, sqrt_bc2, eps, neg_step, eps_inside_sqrt, gscale)
