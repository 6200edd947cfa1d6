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
# * Every buffer the loop writes besides the parameters, gradients and
#   optimizer state belongs to an EpochWorkspace (_epoch_workspace.pxi), which
#   allocates and sizes them from the layout; train_epoch_loop checks the
#   workspace against the call (layout, shapes, no shared memory) and the
#   arguments were validated by nncore.backend._epoch.check_train_epoch, all
#   before the GIL is released: the loop allocates nothing, raises nothing, and
#   every index it forms was range-checked.
# * Progress lives in a small C struct that is copied back into the caller's
#   ``state`` dict before returning, so a Ctrl-C (delivered when the call
#   returns to Python) never separates parameters from the step count.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isfinite, pow as c_pow
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from "_adam.h":
    int nnc_adam_f32(float* p, const float* g, float* m, float* v, float* backup,
                      Py_ssize_t lo, Py_ssize_t hi, float decay, float w, float omw,
                      float beta2, float omb2, float bc2, float sqrt_bc2, float eps,
                      float neg_step, float grad_scale, int lerp_small, int eps_inside,
                      uint32_t kmax, uint32_t kvmax, float pthr) noexcept nogil
    int nnc_adam_f64(double* p, const double* g, double* m, double* v, double* backup,
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
    TL_RESIDUAL = 2    # a Dense layer with a shortcut: out = input + f(input W + b)

    TL_MSE = 0
    TL_CE = 1          # softmax cross-entropy, integer labels
    TL_CE_PROB = 2     # softmax cross-entropy, probability rows
    TL_BCE = 3

    TL_SGD = 0
    TL_ADAGRAD = 1
    TL_RMSPROP = 2
    TL_ADAM = 3

# Layer kinds of the ``ops`` tuples (nncore.backend._epoch parses layers into them).
LOOP_LAYER_KINDS = {"dense": TL_DENSE, "dropout": TL_DROPOUT, "residual_dense": TL_RESIDUAL}

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
    int kind                  # TL_DENSE, TL_DROPOUT or TL_RESIDUAL
    blas_int n_in
    blas_int n_out
    int act                   # activation code (Dense)
    Py_ssize_t w_off          # W at params[w_off : w_off + n_in*n_out], b right after
    Py_ssize_t b_off
    double rate               # dropout rate (Dropout)
    void* out                 # (B, n_out) outputs of this layer
    void* mask                # (B, n_out) dropout mask (Dropout); f(S) (Residual)
    void* input_grad          # (B, n_in) gradient of the input; NULL for the first Dense
    void* layer_input         # the input this layer saw in the current step


cdef struct TLOpt:
    int kind                  # TL_SGD, TL_ADAGRAD, TL_RMSPROP or TL_ADAM
    double lr
    double clip_norm          # 0: no clipping
    double weight_decay       # coupled: the update reads grad + weight_decay * param
    double momentum
    double dampening
    bint nesterov
    double eps
    double lr_decay
    bint eps_inside_sqrt
    double alpha
    double beta1
    double beta2
    double decoupled_decay    # AdamW's weight decay (p *= 1 - lr * decoupled_decay)


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


# The scalars of one Adam step (_tl_adam_scalars), as the C loop takes them.
cdef struct TLAdam:
    double decay
    double w
    double omw
    bint lerp_small
    double beta2
    double omb2
    double bc2
    double sqrt_bc2
    double eps
    double neg_step
    bint eps_inside
    double grad_scale
    uint64_t kmax
    uint64_t kvmax
    double pthr
    # for the task step (_dense_tasks.pxi), which also runs the other kinds
    TLOpt* opt
    double plain_lr           # SGD / Adagrad (decayed) / RMSprop's rate this step
    bint first                # the first update (SGD's momentum buffer starts)



cdef inline void _tl_gather(const floating_in* X, Py_ssize_t d, const int64_t* rows_idx,
                            Py_ssize_t rows, floating* out) noexcept nogil:
    """out[i, :] := X[rows_idx[i], :] (exact copy or C conversion, as gather_rows_k)."""
    cdef Py_ssize_t i, j
    cdef const floating_in* src
    cdef floating* dst
    for i in range(rows):
        src = X + rows_idx[i] * d
        dst = out + i * d
        if sizeof(floating_in) == sizeof(floating):
            memcpy(dst, src, d * sizeof(floating))
        else:
            for j in range(d):
                dst[j] = <floating>src[j]


cdef inline void _tl_gather_targets(const void* targets, bint targets_f64, Py_ssize_t k,
                                    const int64_t* rows_idx, Py_ssize_t rows,
                                    floating* out) noexcept nogil:
    """out[i, :] := targets[rows_idx[i], :] for float32 or float64 targets (as gather_rows_k)."""
    cdef Py_ssize_t i, j
    cdef const double* src64
    cdef const float* src32
    cdef floating* dst
    for i in range(rows):
        dst = out + i * k
        if targets_f64:
            src64 = <const double*>targets + rows_idx[i] * k
            for j in range(k):
                dst[j] = <floating>src64[j]
        else:
            src32 = <const float*>targets + rows_idx[i] * k
            for j in range(k):
                dst[j] = <floating>src32[j]


cdef inline Py_ssize_t _tl_argmax(const floating* x, Py_ssize_t k) noexcept nogil:
    """numpy.argmax of a row: the first maximum, or the first NaN."""
    cdef Py_ssize_t j, best = 0
    cdef floating top = x[0]
    if top != top:
        return 0
    for j in range(1, k):
        if x[j] != x[j]:
            return j
        if x[j] > top:
            top = x[j]
            best = j
    return best


cdef int64_t _tl_count(int loss_code, const floating* logits, const floating* targets,
                       const int64_t* labels, Py_ssize_t rows, Py_ssize_t k) noexcept nogil:
    """Correct predictions in a batch (rows; entries for BCE), as the loss's count_correct."""
    cdef Py_ssize_t i
    cdef int64_t correct = 0
    if loss_code == TL_BCE:
        for i in range(rows * k):
            correct += (logits[i] >= 0) == (targets[i] >= 0.5)
        return correct
    for i in range(rows):
        if loss_code == TL_CE:
            correct += _tl_argmax(logits + i * k, k) == labels[i]
        else:
            correct += _tl_argmax(logits + i * k, k) == _tl_argmax(targets + i * k, k)
    return correct


cdef inline void _tl_bias_act(floating* out, const floating* b, Py_ssize_t rows, Py_ssize_t k,
                              int act) noexcept nogil:
    """out := f(out + b), rows split over threads only for large blocks (same bits)."""
    cdef Py_ssize_t c
    cdef int nt = _threads_for(rows * k)
    if nt == 1 or rows < nt:
        _bias_act_rows(out, b, 0, rows, k, act)
    else:
        for c in prange(nt, num_threads=nt, schedule='static'):
            _bias_act_rows(out, b, (rows * c) // nt, (rows * (c + 1)) // nt, k, act)


# Frozen-lane recognition in the Adam loop (see _adam.h). It never changes a
# bit; the switch exists so tests can run both paths.
cdef bint _adam_freeze = True


def _set_adam_freeze(bint on):
    """Switch the frozen-lane path of the Adam kernel; returns the previous setting."""
    global _adam_freeze
    old = _adam_freeze
    _adam_freeze = on
    return old


cdef inline bint _tl_adam_chunk(floating[::1] p, const floating[::1] g, floating[::1] m,
                                floating[::1] v, floating* backup, Py_ssize_t lo, Py_ssize_t hi,
                                double decay, double w, double omw, bint lerp_small,
                                double beta2, double omb2, double bc2, double sqrt_bc2,
                                double eps, double neg_step, bint eps_inside_sqrt,
                                double grad_scale, uint64_t kmax, uint64_t kvmax,
                                double pthr) noexcept nogil:
    """The update of [lo, hi); with ``backup``, whether every new parameter is finite."""
    # Scalars rounded to the array dtype first, as the other update kernels do.
    if floating is float:
        return nnc_adam_f32(&p[0], &g[0], &m[0], &v[0], backup, lo, hi, <float>decay, <float>w,
                     <float>omw, <float>beta2, <float>omb2, <float>bc2, <float>sqrt_bc2,
                     <float>eps, <float>neg_step, <float>grad_scale, lerp_small,
                     eps_inside_sqrt, <uint32_t>kmax, <uint32_t>kvmax, <float>pthr)
    else:
        return nnc_adam_f64(&p[0], &g[0], &m[0], &v[0], backup, lo, hi, decay, w, omw, beta2, omb2,
                     bc2, sqrt_bc2, eps, neg_step, grad_scale, lerp_small, eps_inside_sqrt,
                     kmax, kvmax, pthr)


cdef void _tl_adam_freeze(floating* dtype_of, double w, double omw, bint lerp_small,
                          double beta2, double eps, bint eps_inside_sqrt, double neg_step,
                          uint64_t* kmax, uint64_t* kvmax, double* pthr) noexcept nogil:
    """Frozen-lane thresholds (_adam.h) from the scalars as the kernel sees them
    (rounded to the type ``dtype_of`` points to); kmax 0 when the path is off."""
    if floating is float:
        nnc_adam_freeze(1, <float>w, <float>omw, lerp_small, <float>beta2, <float>eps,
                        eps_inside_sqrt, <float>neg_step, kmax, kvmax, pthr)
    else:
        nnc_adam_freeze(0, w, omw, lerp_small, beta2, eps, eps_inside_sqrt, neg_step, kmax,
                        kvmax, pthr)
    if not _adam_freeze or _fp_flushing():
        kmax[0] = 0   # (flushing: the subnormal lanes become zeros, nothing to freeze)


cdef bint _tl_adam(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                   floating* backup, double decay, double w, double omw, bint lerp_small,
                   double beta2, double omb2, double bc2, double sqrt_bc2, double eps,
                   double neg_step, bint eps_inside_sqrt, double grad_scale) noexcept nogil:
    """p *= 1 − lr·wd;  m := lerp(m, g, 1−β1);  v := β2 v + (1−β2) g²;
    p −= (lr/bc1) · m / (√v/√bc2 + ε), through the multiversioned C loop;
    with ``backup`` it also copies the parameters there before updating them and
    returns whether every new parameter is finite (each thread checks its chunk)."""
    cdef Py_ssize_t n = p.shape[0], c
    cdef int nt = _threads_for(n)
    cdef bint chunk_finite[MAX_THREADS]
    cdef bint finite = True
    cdef uint64_t kmax, kvmax
    cdef double pthr
    _tl_adam_freeze(&p[0], w, omw, lerp_small, beta2, eps, eps_inside_sqrt, neg_step, &kmax,
                    &kvmax, &pthr)
    if nt == 1:     # no OpenMP region at all for small buffers
        return _tl_adam_chunk(p, g, m, v, backup, 0, n, decay, w, omw, lerp_small, beta2, omb2,
                              bc2, sqrt_bc2, eps, neg_step, eps_inside_sqrt, grad_scale, kmax,
                              kvmax, pthr)
    for c in prange(nt, num_threads=nt, schedule='static'):
        chunk_finite[c] = _tl_adam_chunk(p, g, m, v, backup, _chunk_lo(c, nt, n),
                                         _chunk_lo(c + 1, nt, n), decay, w, omw, lerp_small,
                                         beta2, omb2, bc2, sqrt_bc2, eps, neg_step,
                                         eps_inside_sqrt, grad_scale, kmax, kvmax, pthr)
    for c in range(nt):
        finite = finite and chunk_finite[c]
    return finite


cdef bint _tl_all_finite(const floating* p, Py_ssize_t n) noexcept nogil:
    """No inf or NaN in p[0:n]: x - x is exactly 0 for finite x, NaN otherwise. One
    pass without an early exit, in the array's own type, so it vectorises; called
    on a block just written, still in L1."""
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef floating zero_or_nan
    for i in range(n):
        zero_or_nan = p[i] - p[i]
        bad |= zero_or_nan != zero_or_nan
    return bad == 0


# The SGD, Adagrad and RMSprop steps of the loop save, update and check the
# parameters block by block, so the backup copy and the finiteness check read
# memory the update has just touched (in L1), inside the update's threads.
cdef Py_ssize_t TL_CHECK_BLOCK = 4096


cdef bint _tl_plain_chunk(TLOpt* opt, floating* p, const floating* g, floating* state,
                          floating* backup, Py_ssize_t lo, Py_ssize_t hi, double lr,
                          bint first, double grad_scale) noexcept nogil:
    """backup := p, then the SGD / Adagrad (``lr`` its decayed rate) / RMSprop
    update of [lo, hi) with the scalars of sgd_k / adagrad_k / rmsprop_k, rounded
    to the array dtype the same way; returns whether every new parameter is finite."""
    cdef Py_ssize_t start, end
    cdef bint finite = True
    cdef floating neg_lr = <floating>(-lr), gs = <floating>grad_scale
    cdef floating eps = <floating>opt.eps
    start = lo
    while start < hi:
        end = start + TL_CHECK_BLOCK if hi - start > TL_CHECK_BLOCK else hi
        memcpy(backup + start, p + start, (end - start) * sizeof(floating))
        if opt.kind == TL_SGD:
            _sgd_chunk(p, g, state, start, end, neg_lr, <floating>opt.momentum,
                       <floating>(1.0 - opt.dampening), opt.momentum != 0.0, opt.nesterov,
                       first, gs)
        elif opt.kind == TL_ADAGRAD:
            _adagrad_chunk(p, g, state, start, end, neg_lr, eps, opt.eps_inside_sqrt, gs)
        else:
            _rmsprop_chunk(p, g, state, start, end, neg_lr, <floating>opt.alpha,
                           <floating>(1.0 - opt.alpha), eps, opt.eps_inside_sqrt, gs)
        finite = _tl_all_finite(p + start, end - start) and finite
        start = end
    return finite


cdef bint _tl_plain_update(TLOpt* opt, floating[::1] params, const floating[::1] grads,
                           floating[::1] state, floating* backup, double lr, bint first,
                           double grad_scale) noexcept nogil:
    """_tl_plain_chunk over the parameters, split over threads as sgd_k and the
    others split it (the split changes no bit)."""
    cdef Py_ssize_t n = params.shape[0], c
    cdef int nt = _threads_for(n)
    cdef bint chunk_finite[MAX_THREADS]
    cdef bint finite = True
    if nt == 1:
        return _tl_plain_chunk(opt, &params[0], &grads[0], &state[0], backup, 0, n, lr, first,
                               grad_scale)
    for c in prange(nt, num_threads=nt, schedule='static'):
        chunk_finite[c] = _tl_plain_chunk(opt, &params[0], &grads[0], &state[0], backup,
                                          _chunk_lo(c, nt, n), _chunk_lo(c + 1, nt, n), lr,
                                          first, grad_scale)
    for c in range(nt):
        finite = finite and chunk_finite[c]
    return finite


cdef double _tl_clip_scale(TLOpt* opt, TLState* progress, floating[::1] grads) noexcept nogil:
    """The clipping factor min(1, clip_norm / (‖g‖ + 1e-6)) (1 without clipping);
    records the norm."""
    cdef double grad_norm, ratio
    if opt.clip_norm <= 0.0:
        return 1.0
    grad_norm = sqrt(sum_squares_k(grads))
    progress.grad_norm = grad_norm
    progress.have_grad_norm = True
    ratio = opt.clip_norm / (grad_norm + TL_CLIP_EPS)
    return ratio if ratio < 1.0 else 1.0     # min(1.0, ratio), NaN -> 1.0 as Python's min


cdef void _tl_couple_decay(floating[::1] params, floating[::1] grads,
                           floating[::1] decayed_grads, double grad_scale,
                           double weight_decay) noexcept nogil:
    """decayed_grads := grads * grad_scale + weight_decay * params (torch's coupled
    decay after clipping; grads stay intact)."""
    cdef Py_ssize_t i, n = params.shape[0]
    cdef floating* out = &decayed_grads[0]
    cdef const floating* grad_ptr = &grads[0]
    cdef const floating* param_ptr = &params[0]
    cdef floating scale = <floating>grad_scale
    cdef floating decay = <floating>weight_decay
    if grad_scale == 1.0:
        memcpy(out, grad_ptr, n * sizeof(floating))
    else:
        for i in range(n):
            out[i] = grad_ptr[i] * scale
    for i in range(n):
        out[i] = out[i] + decay * param_ptr[i]


cdef bint _tl_update(TLOpt* opt, TLState* progress, floating[::1] params, floating[::1] grads,
                     floating[::1] first_state, floating[::1] second_state,
                     floating[::1] decayed_grads, floating[::1] update_grads,
                     floating* backup) noexcept nogil:
    """One optimizer step, as nncore.optim's step() + the backend wrappers compute it.

    ``update_grads`` is what the update kernel reads: ``grads``, or
    ``decayed_grads`` (which receives the clipped gradient plus the coupled
    decay) when ``opt.weight_decay != 0``. ``first_state`` is the optimizer's
    first state buffer (SGD's momentum, Adagrad's sum of squares, RMSprop's
    square average, Adam's exp_avg), ``second_state`` Adam's exp_avg_sq. The
    parameters are first saved to ``backup``, and the update's threads check
    what they wrote: returns whether every new parameter is finite."""
    cdef double grad_scale
    cdef TLAdam a
    progress.opt_step += 1
    grad_scale = _tl_clip_scale(opt, progress, grads)
    if opt.weight_decay != 0.0:
        _tl_couple_decay(params, grads, decayed_grads, grad_scale, opt.weight_decay)
        grad_scale = 1.0
    if opt.kind != TL_ADAM:
        return _tl_plain_update(opt, params, update_grads, first_state, backup,
                                _tl_plain_lr(opt, progress.opt_step), progress.opt_step == 1,
                                grad_scale)
    _tl_adam_scalars(opt, progress.opt_step, grad_scale, &a, &params[0])
    return _tl_adam(params, update_grads, first_state, second_state, backup, a.decay, a.w,
                    a.omw, a.lerp_small, a.beta2, a.omb2, a.bc2, a.sqrt_bc2, a.eps, a.neg_step,
                    a.eps_inside, a.grad_scale)


cdef inline double _tl_plain_lr(TLOpt* opt, int64_t opt_step) noexcept nogil:
    """The rate of step ``opt_step`` of SGD / RMSprop (``lr``) and Adagrad (decayed as
    nncore.optim.Adagrad's: lr / (1 + (step - 1) lr_decay))."""
    if opt.kind == TL_ADAGRAD:
        return opt.lr / (1.0 + <double>(opt_step - 1) * opt.lr_decay)
    return opt.lr


cdef void _tl_adam_scalars(TLOpt* opt, int64_t opt_step, double grad_scale, TLAdam* a,
                           floating* dtype_of) noexcept nogil:
    """The scalars of nncore.backend._cython.adam_step, in the same order, for update
    number ``opt_step``; the frozen-lane thresholds for ``dtype_of``'s type."""
    cdef double bc1
    a.decay = 1.0 - opt.lr * opt.decoupled_decay if opt.decoupled_decay != 0.0 else 1.0
    a.w = 1.0 - opt.beta1
    a.omw = 1.0 - a.w
    a.lerp_small = a.w < 0.5
    bc1 = 1.0 - c_pow(opt.beta1, <double>opt_step)
    a.bc2 = 1.0 - c_pow(opt.beta2, <double>opt_step)
    a.beta2 = opt.beta2
    a.omb2 = 1.0 - opt.beta2
    a.sqrt_bc2 = c_pow(a.bc2, 0.5)
    a.eps = opt.eps
    a.neg_step = -(opt.lr / bc1)
    a.eps_inside = opt.eps_inside_sqrt
    a.grad_scale = grad_scale
    _tl_adam_freeze(dtype_of, a.w, a.omw, a.lerp_small, a.beta2, a.eps, a.eps_inside,
                    a.neg_step, &a.kmax, &a.kvmax, &a.pthr)


cdef void _tl_forward(TLLayer* layers, int n_layers, const floating* param_ptr,
                      floating* batch_x, Py_ssize_t rows, uint64_t dropout_seed,
                      TLState* progress) noexcept nogil:
    """Forward pass of ``rows`` rows: each layer's output in its ``out`` buffer."""
    cdef floating* layer_input = batch_x
    cdef floating* out
    cdef TLLayer* layer
    cdef Py_ssize_t n_mask
    cdef int li
    for li in range(n_layers):
        layer = &layers[li]
        layer.layer_input = layer_input
        out = <floating*>layer.out
        if layer.kind == TL_DENSE:
            _dense_product(rows, layer.n_in, layer.n_out, layer_input, param_ptr + layer.w_off,
                           out)
            _tl_bias_act(out, param_ptr + layer.b_off, rows, layer.n_out, layer.act)
        elif layer.kind == TL_RESIDUAL:
            # f(S) in ``mask`` (its derivative needs it), input + f(S) in ``out``, as
            # Residual.forward: Dense's forward, then the backend's add.
            _dense_product(rows, layer.n_in, layer.n_out, layer_input, param_ptr + layer.w_off,
                           <floating*>layer.mask)
            _tl_bias_act(<floating*>layer.mask, param_ptr + layer.b_off, rows, layer.n_out,
                         layer.act)
            _add_chunk(layer_input, <floating*>layer.mask, out, 0, rows * layer.n_out)
        else:
            n_mask = rows * layer.n_out
            _dropout_chunk(dropout_seed, progress.counter, layer.rate,
                           <floating>(1.0 / (1.0 - layer.rate)), <floating*>layer.mask, 0,
                           n_mask)
            progress.counter += <uint64_t>n_mask
            _multiply_chunk(layer_input, <floating*>layer.mask, out, 0, n_mask)
        layer_input = out


cdef void _tl_residual_backward(TLLayer* layer, const floating* param_ptr,
                                floating* grad_ptr, floating* upstream,
                                Py_ssize_t rows) noexcept nogil:
    """Residual.backward: the upstream gradient kept for the shortcut (in ``out``, free
    once the layer above has run its backward), Dense's backward on ``f(S)``, then
    input_grad := inner input gradient + kept gradient (the backend's add)."""
    cdef Py_ssize_t n = rows * layer.n_out
    if layer.input_grad != NULL:
        memcpy(layer.out, upstream, n * sizeof(floating))
    _delta_rows(<floating*>layer.mask, upstream, layer.act, rows, layer.n_out,
                grad_ptr + layer.b_off)
    _dense_weight_grad(rows, layer.n_in, layer.n_out, <floating*>layer.layer_input, upstream,
                       grad_ptr + layer.w_off)
    if layer.input_grad == NULL:
        return
    _dense_input_grad(rows, layer.n_in, layer.n_out, upstream, param_ptr + layer.w_off,
                      <floating*>layer.input_grad)
    _add_chunk(<floating*>layer.input_grad, <floating*>layer.out,
               <floating*>layer.input_grad, 0, n)


cdef void _tl_backward(TLLayer* layers, int n_layers, const floating* param_ptr,
                       floating* grad_ptr, floating* output_grad,
                       Py_ssize_t rows) noexcept nogil:
    """Backward pass from the loss gradient ``output_grad`` (overwritten, as are the
    layers' input gradients): the parameter gradients at ``grad_ptr``."""
    cdef floating* upstream = output_grad
    cdef TLLayer* layer
    cdef int li
    for li in range(n_layers - 1, -1, -1):
        layer = &layers[li]
        if layer.kind == TL_RESIDUAL:
            _tl_residual_backward(layer, param_ptr, grad_ptr, upstream, rows)
            if layer.input_grad == NULL:
                break
            upstream = <floating*>layer.input_grad
        elif layer.kind == TL_DENSE:
            # delta := upstream * f'(Y), db := column sums; dW := inputᵀ delta; dX := delta Wᵀ
            _delta_rows(<floating*>layer.out, upstream, layer.act, rows, layer.n_out,
                        grad_ptr + layer.b_off)
            _dense_weight_grad(rows, layer.n_in, layer.n_out, <floating*>layer.layer_input,
                               upstream, grad_ptr + layer.w_off)
            if layer.input_grad == NULL:
                break
            _dense_input_grad(rows, layer.n_in, layer.n_out, upstream, param_ptr + layer.w_off,
                              <floating*>layer.input_grad)
            upstream = <floating*>layer.input_grad
        else:
            _multiply_chunk(upstream, <floating*>layer.mask, upstream, 0, rows * layer.n_out)


cdef void _tl_batch_coefficients(const double* sample_weight, const int64_t* rows_idx,
                                 Py_ssize_t rows, double* row_coef) noexcept nogil:
    """row_coef := w / Σ w over the batch's rows (all 0 when Σ w = 0), the sum in row
    order: nncore.backend._epoch's _batch_coefficients (numpy.cumsum), bit for bit."""
    cdef Py_ssize_t i
    cdef double total = 0
    for i in range(rows):
        row_coef[i] = sample_weight[rows_idx[i]]
        total = total + row_coef[i]
    for i in range(rows):
        row_coef[i] = row_coef[i] / total if total != 0.0 else 0.0


cdef double _tl_loss(int loss_code, floating[:, ::1] logits, floating[:, ::1] batch_targets,
                     int64_t[::1] batch_labels, floating[:, ::1] output_grad,
                     Py_ssize_t rows, const double* row_coef) noexcept nogil:
    """The batch-mean data loss of the first ``rows`` rows; its gradient in output_grad.
    With ``row_coef`` (not NULL) the weighted mean Σ c_n l_n instead."""
    if rows == logits.shape[0]:     # a full batch: no slices (each costs two atomic ops)
        return _tl_loss_rows(loss_code, logits, batch_targets, batch_labels, output_grad,
                             row_coef)
    return _tl_loss_rows(loss_code, logits[:rows], batch_targets[:rows], batch_labels[:rows],
                         output_grad[:rows], row_coef)


cdef inline double _tl_loss_rows(int loss_code, floating[:, ::1] logits,
                                 floating[:, ::1] batch_targets, int64_t[::1] batch_labels,
                                 floating[:, ::1] output_grad,
                                 const double* row_coef) noexcept nogil:
    if loss_code == TL_MSE:
        return loss_mse_k(logits, batch_targets, output_grad, True, row_coef)
    if loss_code == TL_CE:
        return loss_softmax_ce_k(logits, batch_labels, output_grad, True, row_coef)
    if loss_code == TL_CE_PROB:
        return loss_softmax_ce_prob_k(logits, batch_targets, output_grad, True, row_coef)
    return loss_bce_k(logits, batch_targets, output_grad, True, row_coef)


# ---- the whole-sample step at batch 1 (_tiny.h)
# A call of the loop at batch size 1 takes it when every layer is a Dense layer
# the tiny products take (_tiny_fits) with an activation the step knows, the
# layers hold params end to end, and the optimizer is SGD without momentum,
# clipping, weight decay or penalty. Its bits are the per-layer path's
# (tests/test_tiny.py switches it off with _set_tiny_step and compares).
cdef bint _tiny_step_on = True
cdef Py_ssize_t _tiny_step_calls = 0     # calls of the loop that took it (for tests)


def _tiny_step_count():
    """How many calls of the epoch loop ran the whole-sample step so far."""
    return _tiny_step_calls


def _set_tiny_step(bint on):
    """Switch the whole-sample step of the epoch loop; returns the previous setting."""
    global _tiny_step_on
    old = _tiny_step_on
    _tiny_step_on = on
    return old


cdef bint _tl_tiny_step_fits(TLLayer* layers, int n_layers, Py_ssize_t n_params,
                             Py_ssize_t batch_size, TLOpt* opt, double l1,
                             double l2) noexcept nogil:
    cdef Py_ssize_t end = 0
    cdef int li
    if (not _tiny_step_on or batch_size != 1 or opt.kind != TL_SGD or opt.momentum != 0.0
            or opt.clip_norm > 0.0 or opt.weight_decay != 0.0 or l1 != 0.0 or l2 != 0.0):
        return False
    for li in range(n_layers):
        if (layers[li].kind != TL_DENSE or layers[li].w_off != end
                or not _tiny_fits(1, layers[li].n_in, layers[li].n_out)
                or not nnc_tiny_step_act(layers[li].act)):
            return False
        end = layers[li].b_off + layers[li].n_out
    return end == n_params


cdef void _tl_tiny_layers(TLLayer* layers, int n_layers, const floating* params,
                          floating* batch_x, floating* wt, NncTinyLayer* tiny) noexcept nogil:
    """The step's layer table; W transposed into ``wt`` (at W's offset) for every layer
    above the first with more than one output; each layer's input pointer (the
    per-layer backward reads it)."""
    cdef Py_ssize_t i, j, n_in, n_out
    cdef int li
    for li in range(n_layers):
        n_in, n_out = layers[li].n_in, layers[li].n_out
        layers[li].layer_input = <void*>batch_x if li == 0 else layers[li - 1].out
        tiny[li].n_in = n_in
        tiny[li].n_out = n_out
        tiny[li].w_off = layers[li].w_off
        tiny[li].act = layers[li].act
        tiny[li].out = layers[li].out
        tiny[li].wt = NULL
        if li > 0 and n_out > 1:
            for i in range(n_in):
                for j in range(n_out):
                    wt[layers[li].w_off + j * n_in + i] = params[layers[li].w_off + i * n_out + j]
            tiny[li].wt = <void*>(wt + layers[li].w_off)


cdef inline bint _tl_tiny_update(NncTinyLayer* tiny, int n_layers, TLOpt* opt,
                                 floating[::1] params, floating[::1] grads, floating* backup,
                                 const floating* x, const floating* out_grad) noexcept nogil:
    """Backward and the SGD update of the whole-sample step, with the scalars
    _tl_plain_chunk rounds (lr; no clipping: grad_scale 1)."""
    if floating is float:
        return nnc_tiny_backward_sgd_f32(n_layers, tiny, &params[0], &grads[0], backup, x,
                                         out_grad, <float>(-opt.lr), <float>1.0)
    else:
        return nnc_tiny_backward_sgd_f64(n_layers, tiny, &params[0], &grads[0], backup, x,
                                         out_grad, -opt.lr, 1.0)


include "_dense_tasks.pxi"


cdef void _tl_run(const floating_in[:, ::1] X, const int64_t* labels, const void* targets,
                  bint targets_f64, const int64_t[::1] order, Py_ssize_t batch_size,
                  Py_ssize_t stop, floating[::1] params, floating[::1] grads, TLLayer* layers,
                  int n_layers, int loss_code, const int64_t[:, ::1] segments, double l1,
                  double l2, TLOpt* opt, floating[::1] first_state, floating[::1] second_state,
                  floating[::1] decayed_grads, floating[::1] backup, floating[:, ::1] batch_x,
                  floating[:, ::1] batch_targets, int64_t[::1] batch_labels,
                  floating[:, ::1] logits, floating[:, ::1] output_grad, uint64_t dropout_seed,
                  bint count_correct, const double* sample_weight, double* row_coef,
                  NncTinyLayer* tiny, const TLTaskPlan* task_plan,
                  TLState* progress) noexcept nogil:
    """Steps ``progress.step .. stop-1``, or fewer: it returns after the step during
    which ``_tl_chunk_seconds`` passed, or at a step whose loss or update is not finite.
    With ``tiny`` (not NULL) each step is the whole-sample step (_tiny.h), and the
    clock is read every 32nd step (a few microseconds of such steps). With
    ``task_plan`` (not NULL) the forward pass, and after the loss is known finite
    the backward pass and the update, run as the 2-thread task step
    (_dense_tasks.pxi)."""
    cdef Py_ssize_t n_rows = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_outputs = output_grad.shape[1]
    cdef Py_ssize_t step, first_row, rows, i
    cdef const int64_t* rows_idx
    cdef double data_loss, penalty, step_loss
    cdef double deadline = _monotonic_seconds() + _tl_chunk_seconds
    cdef int64_t batch_correct = 0
    cdef bint has_penalty = l1 != 0.0 or l2 != 0.0
    cdef bint update_finite
    cdef int clock_every = 32 if tiny != NULL and _tl_chunk_seconds > 0 else 1
    cdef bint tasks = task_plan != NULL
    for step in range(progress.step, stop):
        first_row = step * batch_size
        rows = (n_rows - first_row) if n_rows - first_row < batch_size else batch_size
        rows_idx = &order[first_row]
        # ---- batch: rows (converted to the network dtype) and targets
        _tl_gather(&X[0, 0], n_features, rows_idx, rows, &batch_x[0, 0])
        if loss_code == TL_CE:
            for i in range(rows):
                batch_labels[i] = labels[rows_idx[i]]
        else:
            _tl_gather_targets(targets, targets_f64, n_outputs, rows_idx, rows,
                               &batch_targets[0, 0])
        # ---- forward, loss and its output gradient, backward, penalty
        if sample_weight != NULL:
            _tl_batch_coefficients(sample_weight, rows_idx, rows, row_coef)
        if tiny != NULL:
            if floating is float:
                nnc_tiny_forward_f32(n_layers, tiny, &params[0], &batch_x[0, 0])
            else:
                nnc_tiny_forward_f64(n_layers, tiny, &params[0], &batch_x[0, 0])
        elif tasks:
            _tl_task_forward(layers, n_layers, &params[0], &batch_x[0, 0], rows,
                             task_plan.fwd_split[rows != batch_size])
        else:
            _tl_forward(layers, n_layers, &params[0], &batch_x[0, 0], rows, dropout_seed,
                        progress)
        data_loss = _tl_loss(loss_code, logits, batch_targets, batch_labels, output_grad, rows,
                             row_coef if sample_weight != NULL else NULL)
        if count_correct:
            batch_correct = _tl_count(loss_code, &logits[0, 0], &batch_targets[0, 0],
                                      &batch_labels[0], rows, n_outputs)
        penalty = 0.0
        if tiny == NULL and not tasks:
            _tl_backward(layers, n_layers, &params[0], &grads[0], &output_grad[0, 0], rows)
            if has_penalty:
                penalty = regularize_k(params, grads, segments, l1, l2, True)
        # ---- divergence check, update
        step_loss = data_loss + penalty
        progress.loss = step_loss
        if not isfinite(step_loss):
            if tiny != NULL or tasks:    # the gradients the per-layer path leaves
                _tl_backward(layers, n_layers, &params[0], &grads[0], &output_grad[0, 0], rows)
            progress.diverged = True
            progress.step = step
            return
        progress.have_backup = True
        if tiny != NULL:
            progress.opt_step += 1
            update_finite = _tl_tiny_update(tiny, n_layers, opt, params, grads, &backup[0],
                                            &batch_x[0, 0], &output_grad[0, 0])
        elif tasks:
            update_finite = _tl_task_step(layers, n_layers, opt, progress, params, grads,
                                          first_state, second_state, &backup[0],
                                          &output_grad[0, 0], rows,
                                          task_plan.dw_piece[rows != batch_size])
        elif opt.weight_decay != 0.0:
            update_finite = _tl_update(opt, progress, params, grads, first_state, second_state,
                                       decayed_grads, decayed_grads, &backup[0])
        else:
            update_finite = _tl_update(opt, progress, params, grads, first_state, second_state,
                                       decayed_grads, grads, &backup[0])
        if not update_finite:
            # The update overflowed (or the gradient was not finite): stop at this
            # step; the backup holds the parameters its finite loss was computed at.
            progress.diverged = True
            progress.step = step
            return
        progress.loss_sum += step_loss
        progress.correct += batch_correct
        progress.step = step + 1
        if step % clock_every == clock_every - 1 and _monotonic_seconds() >= deadline:
            return


cdef void _tl_read_optimizer(int opt_kind, dict hyper, TLOpt* opt) except *:
    """The hyper-parameters by name; those the optimizer's kind does not read stay 0."""
    opt.kind = opt_kind
    opt.lr = hyper["lr"]
    opt.clip_norm = hyper["clip_norm"]
    opt.weight_decay = hyper["weight_decay"]
    opt.momentum = hyper.get("momentum", 0.0)
    opt.dampening = hyper.get("dampening", 0.0)
    opt.nesterov = hyper.get("nesterov", False)
    opt.eps = hyper.get("eps", 0.0)
    opt.lr_decay = hyper.get("lr_decay", 0.0)
    opt.eps_inside_sqrt = hyper.get("eps_inside_sqrt", False)
    opt.alpha = hyper.get("alpha", 0.0)
    opt.beta1 = hyper.get("beta1", 0.0)
    opt.beta2 = hyper.get("beta2", 0.0)
    opt.decoupled_decay = hyper.get("decoupled_weight_decay", 0.0)


cdef void _tl_read_progress(dict state, TLState* progress) except *:
    progress.step = state["step"]
    progress.opt_step = state["opt_step"]
    progress.counter = state["counter"] % (1 << 64)
    progress.loss_sum = state["loss_sum"]
    progress.correct = state["correct"]
    progress.loss = state["loss"]
    progress.grad_norm = 0.0
    progress.have_grad_norm = False
    progress.diverged = False
    progress.have_backup = state["have_backup"]


cdef void _tl_write_progress(TLState* progress, dict state) except *:
    state["step"] = progress.step
    state["opt_step"] = progress.opt_step
    state["counter"] = progress.counter
    state["loss_sum"] = progress.loss_sum
    state["correct"] = progress.correct
    state["loss"] = progress.loss
    if progress.have_grad_norm:
        state["grad_norm"] = progress.grad_norm
    state["diverged"] = progress.diverged
    state["have_backup"] = progress.have_backup


cdef void _tl_read_layers(list ops, tuple layer_buffers, TLLayer* layers,
                          floating[::1] params) except *:
    """``ops``' tuples and the workspace's layer buffers into the layer structs
    (``params`` fixes the buffers' dtype; the workspace keeps the arrays alive)."""
    cdef floating[:, ::1] view
    cdef TLLayer* layer
    cdef int li
    for li in range(len(ops)):
        layer = &layers[li]
        kind, n_in, n_out, act, w_off, rate = ops[li]
        out, mask, input_grad = layer_buffers[li]
        layer.kind = kind
        layer.n_in = n_in
        layer.n_out = n_out
        layer.act = act
        layer.w_off = w_off
        layer.b_off = w_off + <Py_ssize_t>n_in * n_out
        layer.rate = rate
        layer.layer_input = NULL
        view = out
        layer.out = <void*>&view[0, 0]
        layer.mask = NULL
        layer.input_grad = NULL
        if mask is not None:
            view = mask
            layer.mask = <void*>&view[0, 0]
        if input_grad is not None:
            view = input_grad
            layer.input_grad = <void*>&view[0, 0]


cdef int _tl_require_layers(list ops, Py_ssize_t n_params) except -1:
    """Every learned layer's W and b inside params, a known activation; dropout rates in
    [0, 1)."""
    for kind, n_in, n_out, act, w_off, rate in ops:
        if kind == TL_DENSE or kind == TL_RESIDUAL:
            _require_act(act, "train_epoch_loop")
            if w_off < 0 or w_off + n_in * n_out + n_out > n_params:
                raise ValueError(f"nncore._kernels: train_epoch_loop: layer at offset {w_off} "
                                 f"reaches past params ({n_params})")
        elif not 0.0 <= rate < 1.0:
            raise ValueError(f"nncore._kernels: train_epoch_loop: dropout rate {rate}")
    return 0


cdef int _tl_require_call(const floating_in[:, ::1] X, object T, const int64_t[::1] order,
                          Py_ssize_t batch_size, Py_ssize_t stop, floating[::1] params,
                          floating[::1] grads, list ops, int loss_code,
                          const int64_t[:, ::1] segments, int opt_kind, tuple opt_buffers,
                          dict state) except -1:
    """What the loop indexes with, beyond the workspace: lengths, the rows of the
    epoch's order it will use, labels, layer offsets and penalty segments (O(1)
    per layer, one pass over the order's rows and the labels)."""
    cdef Py_ssize_t n = X.shape[0], n_params = params.shape[0], step = state["step"]
    cdef Py_ssize_t n_outputs = ops[len(ops) - 1][2] if ops else 0
    _require(n > 0 and n_params > 0 and grads.shape[0] == n_params,
             "train_epoch_loop: X and params non-empty, grads of params' length")
    for buffer in opt_buffers:
        _require(len(buffer) == n_params, "train_epoch_loop: optimizer buffers of params' length")
    _require(0 <= loss_code <= TL_BCE and 0 <= opt_kind <= TL_ADAM,
             "train_epoch_loop: unknown loss or optimizer code")
    _require(batch_size >= 1 and order.shape[0] == n and 0 <= step <= stop
             and stop <= (n + batch_size - 1) // batch_size,
             "train_epoch_loop: order (n,), 0 <= state['step'] <= stop <= ceil(n / batch_size)")
    _require_rows_in(order[min(step * batch_size, n):min(stop * batch_size, n)], n,
                     "train_epoch_loop: order")
    if loss_code == TL_CE:
        _require(T.shape == (n,), "train_epoch_loop: labels must have X's rows")
        _require_rows_in(T, n_outputs, "train_epoch_loop: labels")
    else:
        _require(T.shape == (n, n_outputs), "train_epoch_loop: targets must be (n, outputs)")
    _tl_require_layers(ops, n_params)
    _require(segments.shape[1] == 2 and (segments.shape[0] == 0 or (
        _np.min(segments.base) >= 0 and _np.max(segments.base) <= n_params)),
        "train_epoch_loop: segments must be (k, 2) ranges in params")
    return 0


def train_epoch_loop(const floating_in[:, ::1] X, object T, const int64_t[::1] order,
                     Py_ssize_t batch_size, Py_ssize_t stop,
                     floating[::1] params, floating[::1] grads, list ops, int loss_code,
                     const int64_t[:, ::1] segments, double l1, double l2,
                     int opt_kind, dict hyper, tuple opt_buffers,
                     EpochWorkspace workspace, uint64_t dropout_seed, dict state,
                     const double[::1] sample_weight=None):
    """Run batches ``state["step"] .. stop-1`` of an epoch (see _train_loop.pxi),
    or fewer: it returns after the step during which ``_tl_chunk_seconds`` passed.
    With ``sample_weight`` (float64, one per row of X) each step's data loss is
    Σ w l / Σ w over its batch (the coefficients in ``workspace.row_coef``).

    Called only by nncore.backend._cython.train_epoch after
    nncore.backend._epoch.check_train_epoch. ``ops``: one tuple per active
    layer ``(kind, n_in, n_out, act, w_off, rate)``; ``opt_kind`` a code of
    LOOP_OPTIMIZERS, ``hyper`` the hyper-parameters it names (by name;
    clip_norm 0 = no clipping), ``opt_buffers`` the optimizer's state arrays;
    ``workspace`` an :class:`EpochWorkspace` for this layout (checked here: a
    wrong one is a ValueError). ``state`` is updated in place.
    """
    global _par_min, _tl_depth, _tl_saved_par_min, _tiny_step_calls
    cdef TLLayer* layers
    cdef NncTinyLayer* tiny = NULL
    cdef floating* wt = NULL
    cdef bint entered = False, shared
    cdef TLTaskPlan task_plan
    cdef TLTaskPlan* tasks = NULL
    cdef Py_ssize_t plan_rows[2]
    cdef int which, li
    cdef TLOpt opt
    cdef TLState progress
    cdef int n_layers = len(ops)
    cdef const int64_t[::1] label_view
    cdef const float[:, ::1] targets32
    cdef const double[:, ::1] targets64
    cdef const int64_t* labels = NULL
    cdef const void* targets = NULL
    cdef floating[::1] first_state, second_state, decayed_grads, backup
    cdef floating[:, ::1] batch_x, batch_targets, logits, output_grad
    cdef int64_t[::1] batch_labels
    cdef double[::1] row_coef
    cdef bint targets_f64 = False
    cdef bint count_correct = bool(state["count"])
    cdef const double* weight_ptr = NULL
    cdef double* coef_ptr = NULL
    cdef unsigned fp_saved[NNC_FP_TEAM_MAX]
    cdef int fp_threads, fp_entered
    _tl_require_call(X, T, order, batch_size, stop, params, grads, ops, loss_code, segments,
                     opt_kind, opt_buffers, state)
    # (``.base``: the arrays behind the typed views)
    workspace.check(params.base, [op[:3] for op in ops], batch_size, X.shape[1],
                    loss_code == TL_CE, hyper["weight_decay"] != 0.0, X=X.base, T=T,
                    order=order.base, grads=grads.base, segments=segments.base,
                    sample_weight=None if sample_weight is None else sample_weight.base,
                    **{f"optimizer buffer {i}": b for i, b in enumerate(opt_buffers)})
    batch_x = workspace.batch_x
    batch_targets = workspace.batch_targets
    batch_labels = workspace.batch_labels
    output_grad = workspace.output_grad
    decayed_grads = workspace.decayed_grads
    backup = workspace.backup
    row_coef = workspace.row_coef
    logits = workspace.layer_buffers[n_layers - 1][0]
    if sample_weight is not None:
        # O(1): one weight per row (the workspace checked row_coef's batch_size slots)
        if sample_weight.shape[0] != X.shape[0]:
            raise ValueError("nncore._kernels: train_epoch_loop: sample_weight needs one "
                             "weight per row of X")
        weight_ptr = &sample_weight[0]
        coef_ptr = &row_coef[0]
    if loss_code == TL_CE:
        label_view = T
        labels = &label_view[0]
    elif T.dtype.itemsize == 8:
        targets64 = T
        targets = &targets64[0, 0]
        targets_f64 = True
    else:
        targets32 = T
        targets = &targets32[0, 0]
    _tl_read_optimizer(opt_kind, hyper, &opt)
    # Unused buffer slots hold params: never touched by the kinds that do not read them.
    first_state = opt_buffers[0] if len(opt_buffers) > 0 else params
    second_state = opt_buffers[1] if len(opt_buffers) > 1 else params
    _tl_read_progress(state, &progress)
    layers = <TLLayer*>PyMem_Malloc(max(n_layers, 1) * sizeof(TLLayer))
    if layers == NULL:
        raise MemoryError()
    try:
        _tl_read_layers(ops, workspace.layer_buffers, layers, params)
        if _tl_tiny_step_fits(layers, n_layers, params.shape[0], batch_size, &opt, l1, l2):
            tiny = <NncTinyLayer*>PyMem_Malloc(n_layers * sizeof(NncTinyLayer))
            wt = <floating*>PyMem_Malloc(params.shape[0] * sizeof(floating))
            if tiny == NULL or wt == NULL:
                raise MemoryError()
            _tl_tiny_layers(layers, n_layers, &params[0], &batch_x[0, 0], wt, tiny)
            _tiny_step_calls += 1
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
        fp_threads = _omp_threads()
        # (one loop at a time: the task step sets OpenBLAS's process-wide thread count)
        if tiny == NULL and _tl_depth == 1 and _tl_tasks_fit(
                layers, n_layers, params.shape[0], &opt, l1, l2, shared, fp_threads,
                batch_size, _gemm_library == "mkl"):
            tasks = &task_plan
            plan_rows[0] = batch_size
            plan_rows[1] = X.shape[0] - (X.shape[0] - 1) // batch_size * batch_size
            for which in range(2):
                task_plan.dw_piece[which] = _tl_piece_rows(&layers[0], plan_rows[which],
                                                           &params[0])
                for li in range(n_layers):
                    task_plan.fwd_split[which][li] = _tl_fwd_split(&layers[li], plan_rows[which],
                                                                   &params[0])
        with nogil:
            # FTZ/DAZ on every thread of the loop when nc.set_flush_denormal(True)
            fp_entered = nnc_fp_enter(fp_threads, fp_saved)
            _tl_run(X, labels, targets, targets_f64, order, batch_size, stop, params, grads,
                    layers, n_layers, loss_code, segments, l1, l2, &opt, first_state,
                    second_state, decayed_grads, backup, batch_x, batch_targets, batch_labels,
                    logits, output_grad, dropout_seed, count_correct, weight_ptr, coef_ptr,
                    tiny, tasks, &progress)
            nnc_fp_leave(fp_entered, fp_saved)
    finally:
        if entered:
            _tl_depth -= 1
            if _tl_depth == 0:
                _par_min = _tl_saved_par_min
            _blas_pool_leave()
        PyMem_Free(layers)
        PyMem_Free(tiny)
        PyMem_Free(wt)
    _tl_write_progress(&progress, state)



def adam_step(floating[::1] params, const floating[::1] grads, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, double decay, double w, double omw,
              bint lerp_small, double beta2, double omb2, double bc2, double sqrt_bc2,
              double eps, double neg_step, bint eps_inside_sqrt, double grad_scale):
    """Adam/AdamW step through the multiversioned C loop: AVX-512/AVX2 where the
    CPU has them, so the update is not bound by SSE2's sqrt/div throughput
    (bench/bench_kernels.py measures it)."""
    _require(grads.shape[0] == params.shape[0] == exp_avg.shape[0] == exp_avg_sq.shape[0],
             "adam_step: params, grads, exp_avg and exp_avg_sq must have one length")
    if params.shape[0] == 0:
        return
    cdef unsigned fp_saved[NNC_FP_TEAM_MAX]
    cdef int nt = _omp_threads(), fp
    with nogil:   # (flushing subnormals only when nc.set_flush_denormal(True): _fp_mode.h)
        fp = nnc_fp_enter(nt, fp_saved)
        _tl_adam(params, grads, exp_avg, exp_avg_sq, NULL, decay, w, omw, lerp_small, beta2,
                 omb2, bc2, sqrt_bc2, eps, neg_step, eps_inside_sqrt, grad_scale)
        nnc_fp_leave(fp, fp_saved)
