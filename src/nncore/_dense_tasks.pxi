# The 2-thread dense step (included by _train_loop.pxi; issue 15 item 3): the
# forward pass in column halves, the backward pass + Adam update as two tasks.
#
# Why: on 2 threads the per-layer path splits every GEMM of the backward pass
# over both threads through OpenBLAS (a fork and a join each) and then runs the
# Adam update over all parameters as one more parallel loop. At batch 32 the
# backward GEMMs are small (K = 32 rows) and gain little or lose from the split
# (bench/step_threads.py), and every join waits for the slower thread.
#
# Design: one OpenMP region of 2 threads per step, after the loss is known
# finite. Thread 0 walks the chain: for each layer from the top, delta := upstream
# ⊙ f'(Y) and db, then dX (the next layer's upstream); for the first layer dW.
# Thread 1 follows one layer behind: dW of layer l as soon as thread 0 has
# published delta_l, then the Adam update of layer l as soon as dX_l (which
# reads the old W_l) is done. The first layer's update, the largest, is split
# between both threads once its dW is done. Waits are flags (release/acquire),
# so nothing reads a buffer before its writer has finished it.
#
# Bits: each GEMM is one whole BLAS call on one thread (OpenBLAS's thread count
# is set to 1 around the region), i.e. the calls of the one-thread path with the
# same arguments; the update is elementwise, so which thread updates which
# parameters changes nothing; db is summed in row order by one thread as before.
# The result is the one-thread path's (tests/test_dense_tasks.py).
#
# Forward: each layer's output columns in two halves, one per thread (one
# single-threaded GEMM and the bias + activation of its columns each), the
# threads meeting after every layer: one fork per forward pass instead of one per
# BLAS call (the first layer's 784-long inner sum is 4 calls). Halves and dW
# pieces are used only for shapes where they gave the whole call's bits.
#
# Scope: float32/float64 networks of Dense layers only that hold ``params`` end
# to end, Adam/AdamW, SGD, Adagrad or RMSprop (the same update kernels, by
# ranges) without clipping, coupled weight decay or L1/L2 penalty
# (those need the whole gradient before any update), the shared BLAS pool on
# OpenBLAS (or the GEMMs on MKL's sequential layer, NNCORE_GEMM=mkl), 2+ threads,
# no other epoch loop running (the thread count of OpenBLAS is process-wide) and
# enough work per step (TL_TASK_MIN_WORK). Everything else keeps the per-layer path.

cdef extern from *:
    """
    static inline int nnc_claim(int* counter) {
        return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    }
    static inline void nnc_flag_set(int* f) { __atomic_store_n(f, 1, __ATOMIC_RELEASE); }
    #include <sched.h>
    /* Spin a while (the other task is usually microseconds away), then give the
       core away between looks: on a loaded machine the thread being waited for
       may be the one waiting for a core. */
    static inline void nnc_flag_wait(int* f) {
        unsigned spins = 0;
        while (!__atomic_load_n(f, __ATOMIC_ACQUIRE)) {
            if (++spins > 4096) {
                sched_yield();
            } else {
    #if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
    #endif
            }
        }
    }
    #ifdef _OPENMP
    static inline int nnc_team_threads(void) { return omp_get_num_threads(); }
    static inline int nnc_team_thread(void) { return omp_get_thread_num(); }
    #else
    static inline int nnc_team_threads(void) { return 1; }
    static inline int nnc_team_thread(void) { return 0; }
    #endif
    """
    int nnc_claim(int* counter) noexcept nogil
    void nnc_flag_set(int* f) noexcept nogil
    void nnc_flag_wait(int* f) noexcept nogil
    int nnc_team_threads() noexcept nogil
    int nnc_team_thread() noexcept nogil

from cython.parallel cimport parallel

cdef enum:
    TL_TASK_MAX_LAYERS = 64
    TL_TASK_PIECES = 8        # the first layer's dW in about this many pieces of rows


cdef struct TLTaskPlan:
    # for a full batch [0] and the epoch's last batch [1]: the first layer's dW
    # piece rows, and each layer's forward split column (n_out: not split)
    Py_ssize_t dw_piece[2]
    Py_ssize_t fwd_split[2][TL_TASK_MAX_LAYERS]


cdef struct TLTaskSync:
    int delta_ready[TL_TASK_MAX_LAYERS]   # delta_l and db_l written (by thread 0)
    int dx_done[TL_TASK_MAX_LAYERS]       # dX_l written, so W_l may change
    int next_piece                        # the first layer's next dW piece to claim

# Off only in tests (to compare with the per-layer path); the count says how
# many steps took it.
cdef bint _dense_tasks_on = True
cdef Py_ssize_t _dense_task_steps = 0


def _set_dense_tasks(bint on):
    """Switch the 2-thread task step of dense Adam networks; returns the old setting."""
    global _dense_tasks_on
    old = _dense_tasks_on
    _dense_tasks_on = on
    return old


def _set_task_min_work(Py_ssize_t work):
    """Set the task step's least work per step (TL_TASK_MIN_WORK; 0 lets the tests'
    small networks take it); returns the old value."""
    global TL_TASK_MIN_WORK
    old = TL_TASK_MIN_WORK
    TL_TASK_MIN_WORK = work
    return old


def _dense_task_count():
    """How many steps of the epoch loop ran the 2-thread task step so far."""
    return _dense_task_steps


# Below this much work per step, n_params * (batch rows + 8) (the update weighs about
# as much as 8 rows of products), the two regions' hand-offs cost more than the
# second thread gains: a 64-256-256-10 Adam step at batch 1-8 took 1.1-1.7x the
# per-layer path's time on 2 threads, from batch 16 0.8x; 784-256-256-10 gained
# from batch 1 (0.89x). Measured 2026-11-30 on the quiet 2-core Xeon.
cdef Py_ssize_t TL_TASK_MIN_WORK = 1400000


cdef inline int _tl_blas_one() noexcept nogil:
    """OpenBLAS at one thread for the task step's own calls; returns the count to put
    back (0: no OpenBLAS setter; with the GEMMs on MKL's sequential layer every
    call is single-threaded anyway)."""
    cdef int saved
    if nnc_blas_set_threads == NULL or nnc_blas_get_threads == NULL:
        return 0
    saved = nnc_blas_get_threads()
    nnc_blas_set_threads(1)
    return saved


cdef inline void _tl_blas_back(int saved) noexcept nogil:
    """Undo _tl_blas_one."""
    if saved > 0:
        nnc_blas_set_threads(saved)


cdef bint _tl_tasks_fit(TLLayer* layers, int n_layers, Py_ssize_t n_params, TLOpt* opt,
                        double l1, double l2, bint shared, int threads,
                        Py_ssize_t rows, bint mkl) noexcept nogil:
    """Whether the steps of this loop call take the task step (see the Scope note)."""
    cdef Py_ssize_t end = 0
    cdef int li
    if n_params * (rows + 8) < TL_TASK_MIN_WORK:
        return False
    # Every GEMM of the step must run on its calling thread: OpenBLAS set to one
    # thread around the regions (its setter found, the shared pool in use), or MKL's
    # sequential layer (NNCORE_GEMM=mkl), single-threaded by construction.
    if (not _dense_tasks_on or threads < 2
            or not (mkl or (shared and nnc_blas_set_threads != NULL))
            or opt.clip_norm > 0.0 or opt.weight_decay != 0.0
            or l1 != 0.0 or l2 != 0.0 or n_layers < 2 or n_layers > TL_TASK_MAX_LAYERS):
        return False
    for li in range(n_layers):
        if layers[li].kind != TL_DENSE or layers[li].w_off != end:
            return False
        end = layers[li].b_off + layers[li].n_out
    return end == n_params


cdef inline bint _tl_task_adam(floating[::1] p, const floating[::1] g, floating[::1] m,
                               floating[::1] v, floating* backup, Py_ssize_t lo,
                               Py_ssize_t hi, TLAdam* a) noexcept nogil:
    """The update of [lo, hi) with its backup (Adam's, or _tl_plain_chunk's for the others)."""
    if a.opt.kind != TL_ADAM:
        return _tl_plain_chunk(a.opt, &p[0], &g[0], &m[0], backup, lo, hi, a.plain_lr, a.first,
                               1.0)
    return _tl_adam_chunk(p, g, m, v, backup, lo, hi, a.decay, a.w, a.omw, a.lerp_small,
                          a.beta2, a.omb2, a.bc2, a.sqrt_bc2, a.eps, a.neg_step, a.eps_inside,
                          a.grad_scale, a.kmax, a.kvmax, a.pthr)


cdef inline void _tl_dw_rows(TLLayer* layer, Py_ssize_t rows, Py_ssize_t r0, Py_ssize_t r1,
                             const floating* delta, floating* grad_ptr) noexcept nogil:
    """Rows r0..r1-1 of the layer's dW := inputᵀ delta (all rows: the per-layer call)."""
    cdef blas_int n_in = layer.n_in, n_out = layer.n_out
    if r0 == 0 and r1 == n_in:
        _dense_weight_grad(rows, n_in, n_out, <floating*>layer.layer_input, delta,
                           grad_ptr + layer.w_off)
    else:
        _gemm_rm(True, False, <blas_int>(r1 - r0), n_out, <blas_int>rows, 1,
                 <floating*>layer.layer_input + r0, n_in, delta, n_out, 0,
                 grad_ptr + layer.w_off + r0 * n_out, n_out)


cdef bint _tl_task_first_layer(TLLayer* layers, floating[::1] params, floating[::1] grads,
                               floating[::1] m, floating[::1] v, floating* backup,
                               Py_ssize_t rows, TLAdam* a, TLTaskSync* sync,
                               Py_ssize_t piece_rows) noexcept nogil:
    """Both threads: claim pieces of the first layer's dW (rows of dW, fixed by the
    shape), compute each and update its weights at once; whoever is free takes the
    next piece. Which thread runs a piece changes no bit."""
    cdef TLLayer* layer = &layers[0]
    cdef const floating* delta = <floating*>layers[1].input_grad
    cdef Py_ssize_t n_pieces = (layer.n_in + piece_rows - 1) // piece_rows, piece, r0, r1
    cdef bint finite = True
    while True:
        piece = nnc_claim(&sync.next_piece)
        if piece >= n_pieces:
            return finite
        r0 = piece * piece_rows
        r1 = min(r0 + piece_rows, <Py_ssize_t>layer.n_in)
        _tl_dw_rows(layer, rows, r0, r1, delta, &grads[0])
        finite = _tl_task_adam(params, grads, m, v, backup, layer.w_off + r0 * layer.n_out,
                               layer.w_off + r1 * layer.n_out, a) and finite


cdef bint _tl_task_chain(TLLayer* layers, int n_layers, floating[::1] params,
                         floating[::1] grads, floating[::1] m, floating[::1] v,
                         floating* backup, floating* output_grad, Py_ssize_t rows,
                         TLAdam* a, TLTaskSync* sync, Py_ssize_t piece_rows) noexcept nogil:
    """Thread 0: every layer's delta and db, dX of every layer above the first, the
    first layer's bias update, then pieces of the first layer."""
    cdef floating* upstream = output_grad
    cdef floating* grad_ptr = &grads[0]
    cdef TLLayer* layer
    cdef int li
    for li in range(n_layers - 1, -1, -1):
        layer = &layers[li]
        _delta_rows(<floating*>layer.out, upstream, layer.act, rows, layer.n_out,
                    grad_ptr + layer.b_off)
        nnc_flag_set(&sync.delta_ready[li])
        if li == 0:
            break
        _dense_input_grad(rows, layer.n_in, layer.n_out, upstream, &params[0] + layer.w_off,
                          <floating*>layer.input_grad)
        nnc_flag_set(&sync.dx_done[li])
        upstream = <floating*>layer.input_grad
    finite = _tl_task_adam(params, grads, m, v, backup, layers[0].b_off,
                           layers[0].b_off + layers[0].n_out, a)
    return _tl_task_first_layer(layers, params, grads, m, v, backup, rows, a, sync,
                                piece_rows) and finite


cdef bint _tl_task_updates(TLLayer* layers, int n_layers, floating[::1] params,
                           floating[::1] grads, floating[::1] m, floating[::1] v,
                           floating* backup, floating* output_grad, Py_ssize_t rows,
                           TLAdam* a, TLTaskSync* sync, Py_ssize_t piece_rows) noexcept nogil:
    """Thread 1: dW and the update of every layer above the first, each as soon as
    its inputs are done, then pieces of the first layer."""
    cdef floating* delta
    cdef TLLayer* layer
    cdef bint finite = True
    cdef int li
    for li in range(n_layers - 1, 0, -1):
        layer = &layers[li]
        # delta_l sits where layer l's upstream gradient was (thread 0 wrote it there)
        delta = output_grad if li == n_layers - 1 else <floating*>layers[li + 1].input_grad
        nnc_flag_wait(&sync.delta_ready[li])     # delta_l and db_l
        _dense_weight_grad(rows, layer.n_in, layer.n_out, <floating*>layer.layer_input,
                           delta, &grads[0] + layer.w_off)
        nnc_flag_wait(&sync.dx_done[li])         # dX_l has read the old W_l
        finite = _tl_task_adam(params, grads, m, v, backup, layer.w_off,
                               layer.b_off + layer.n_out, a) and finite
    nnc_flag_wait(&sync.delta_ready[0])
    return _tl_task_first_layer(layers, params, grads, m, v, backup, rows, a, sync,
                                piece_rows) and finite


cdef bint _tl_task_step(TLLayer* layers, int n_layers, TLOpt* opt, TLState* progress,
                        floating[::1] params, floating[::1] grads, floating[::1] m,
                        floating[::1] v, floating* backup, floating* output_grad,
                        Py_ssize_t rows, Py_ssize_t piece_rows) noexcept nogil:
    """Backward pass and update of one step as the two tasks above; the parameters
    are saved to ``backup`` first; returns whether every new parameter is finite."""
    global _dense_task_steps
    cdef TLAdam a
    cdef TLTaskSync sync
    cdef bint finite[2]
    cdef int saved_blas_threads, tid = 0
    progress.opt_step += 1
    # the scalars of _tl_update (no clipping: grad_scale 1)
    if opt.kind == TL_ADAM:
        _tl_adam_scalars(opt, progress.opt_step, 1.0, &a, &params[0])
    a.opt = opt
    a.first = progress.opt_step == 1
    a.plain_lr = _tl_plain_lr(opt, progress.opt_step)
    memset(&sync, 0, sizeof(sync))
    finite[0] = True
    finite[1] = True
    _dense_task_steps += 1
    saved_blas_threads = _tl_blas_one()      # each thread's GEMMs whole, on that thread
    with parallel(num_threads=2):
        tid = nnc_team_thread()
        if tid == 0:
            finite[0] = _tl_task_chain(layers, n_layers, params, grads, m, v, backup,
                                       output_grad, rows, &a, &sync, piece_rows)
        if tid == 1 or (tid == 0 and nnc_team_threads() < 2):   # (a team of one: in turn)
            finite[1] = _tl_task_updates(layers, n_layers, params, grads, m, v, backup,
                                         output_grad, rows, &a, &sync, piece_rows)
    _tl_blas_back(saved_blas_threads)
    return finite[0] and finite[1]


# Shapes (GEMM library, itemsize, rows, n_in, n_out) whose first-layer dW pieces were checked
# against the whole GEMM: piece rows, or n_in (one piece) where they differed.
_piece_rows_checked = {}


cdef Py_ssize_t _tl_piece_rows(TLLayer* layer, Py_ssize_t rows, floating* dtype_of) except -1:
    """Rows per piece of the first layer's dW at ``rows`` batch rows (GIL held).

    OpenBLAS picks kernels by shape (small-matrix and edge kernels), and some of
    them sum in another order, so a piece of rows is not sure to give the bits of
    the same rows of the whole product. Once per shape and process the pieces are
    computed on random data and compared with the whole call (one thread, as the
    task step runs them); where any bit differs the layer stays one piece."""
    cdef Py_ssize_t n_in = layer.n_in, n_out = layer.n_out
    cdef Py_ssize_t piece = (((n_in + TL_TASK_PIECES - 1) // TL_TASK_PIECES + 15) // 16) * 16
    cdef floating[:, ::1] X, delta
    cdef floating[::1] whole, parts
    if piece >= n_in or rows < 1:
        return n_in
    dtype = _np.float32 if floating is float else _np.float64
    key = (_gemm_library, _np.dtype(dtype).itemsize, rows, n_in, n_out)
    if key not in _piece_rows_checked:
        rng = _np.random.default_rng(12345)
        X = rng.standard_normal((rows, n_in)).astype(dtype)
        delta = rng.standard_normal((rows, n_out)).astype(dtype)
        whole = _np.empty(n_in * n_out, dtype)
        parts = _np.empty(n_in * n_out, dtype)
        _tl_pieces_run(layer, rows, piece, &X[0, 0], &delta[0, 0], &whole[0], &parts[0])
        _piece_rows_checked[key] = piece if _np.array_equal(whole.base, parts.base) else n_in
    return _piece_rows_checked[key]


cdef void _tl_pieces_run(TLLayer* layer, Py_ssize_t rows, Py_ssize_t piece, floating* X,
                         const floating* delta, floating* whole,
                         floating* parts) noexcept nogil:
    """The layer's dW of X and delta, whole into ``whole`` and by pieces into ``parts``."""
    cdef TLLayer probe = layer[0]
    cdef Py_ssize_t r0
    cdef int saved = _tl_blas_one()
    probe.w_off = 0
    probe.layer_input = X
    _tl_dw_rows(&probe, rows, 0, probe.n_in, delta, whole)
    r0 = 0
    while r0 < probe.n_in:
        _tl_dw_rows(&probe, rows, r0, min(r0 + piece, <Py_ssize_t>probe.n_in), delta, parts)
        r0 += piece
    _tl_blas_back(saved)


# ---- the forward pass on 2 threads: each layer's output columns in two halves
# (one single-threaded GEMM and the bias + activation of those columns per
# thread), the threads meeting after each layer. Split only where the halves
# gave the whole call's bits on random data (once per shape, as the dW pieces).

cdef inline void _tl_fwd_columns(TLLayer* layer, const floating* param_ptr, Py_ssize_t rows,
                                 Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Columns c0..c1-1 of the layer's output := f(input W + b) (all: the per-layer call)."""
    cdef Py_ssize_t i, n_out = layer.n_out
    cdef floating* out = <floating*>layer.out
    if c0 == 0 and c1 == n_out:
        _dense_product(rows, layer.n_in, n_out, <floating*>layer.layer_input,
                       param_ptr + layer.w_off, out)
        _bias_act_rows(out, param_ptr + layer.b_off, 0, rows, n_out, layer.act)
        return
    _gemm_rm(False, False, <blas_int>rows, <blas_int>(c1 - c0), layer.n_in, 1,
             <floating*>layer.layer_input, layer.n_in, param_ptr + layer.w_off + c0,
             <blas_int>n_out, 0, out + c0, <blas_int>n_out)
    for i in range(rows):
        _bias_act_rows(out + i * n_out + c0, param_ptr + layer.b_off + c0, 0, 1, c1 - c0,
                       layer.act)


cdef void _tl_fwd_half(TLLayer* layers, int n_layers, const floating* param_ptr,
                       Py_ssize_t rows, const Py_ssize_t* split, int tid,
                       int* done) noexcept nogil:
    """Thread ``tid``'s half of every layer (thread 0 the columns before the split)."""
    cdef Py_ssize_t c0, c1
    cdef int li
    for li in range(n_layers):
        c0 = 0 if tid == 0 else split[li]
        c1 = split[li] if tid == 0 else layers[li].n_out
        if c1 > c0:
            _tl_fwd_columns(&layers[li], param_ptr, rows, c0, c1)
        if li + 1 < n_layers:       # the next layer reads every column
            nnc_flag_set(&done[2 * li + tid])
            nnc_flag_wait(&done[2 * li + 1 - tid])


cdef void _tl_task_forward(TLLayer* layers, int n_layers, const floating* param_ptr,
                           floating* batch_x, Py_ssize_t rows,
                           const Py_ssize_t* split) noexcept nogil:
    """The forward pass of the task step (each layer's output in its ``out``)."""
    cdef int done[2 * TL_TASK_MAX_LAYERS]
    cdef int li, saved_blas_threads, tid = 0
    for li in range(n_layers):
        layers[li].layer_input = <void*>batch_x if li == 0 else layers[li - 1].out
    memset(done, 0, sizeof(done))
    saved_blas_threads = _tl_blas_one()
    with parallel(num_threads=2):
        tid = nnc_team_thread()
        if nnc_team_threads() < 2:      # a team of one: the layers whole, in turn
            _tl_fwd_whole(layers, n_layers, param_ptr, rows)
        else:
            _tl_fwd_half(layers, n_layers, param_ptr, rows, split, tid, done)
    _tl_blas_back(saved_blas_threads)


cdef void _tl_fwd_whole(TLLayer* layers, int n_layers, const floating* param_ptr,
                        Py_ssize_t rows) noexcept nogil:
    """Every layer's forward whole, in turn (a team of one thread). Its own function
    so that no loop index is assigned inside the parallel block (Cython would make
    it lastprivate, read back uninitialised when the other branch ran)."""
    cdef int li
    for li in range(n_layers):
        _tl_fwd_columns(&layers[li], param_ptr, rows, 0, layers[li].n_out)


cdef Py_ssize_t _tl_fwd_split(TLLayer* layer, Py_ssize_t rows, floating* dtype_of) except -1:
    """The column where the two threads split this layer's forward at ``rows`` rows
    (a multiple of 64), or n_out where the halves did not give the whole call's
    bits on random data (checked once per shape; GIL held)."""
    cdef Py_ssize_t n_in = layer.n_in, n_out = layer.n_out, split = _chunk_lo(1, 2, n_out)
    cdef floating[:, ::1] X, W, whole, halves
    if split <= 0 or rows < 1:
        return n_out
    dtype = _np.float32 if floating is float else _np.float64
    key = ("forward", _gemm_library, _np.dtype(dtype).itemsize, rows, n_in, n_out)
    if key not in _piece_rows_checked:
        rng = _np.random.default_rng(12345)
        X = rng.standard_normal((rows, n_in)).astype(dtype)
        W = rng.standard_normal((n_in + 1, n_out)).astype(dtype)     # W, then b
        whole = _np.empty((rows, n_out), dtype)
        halves = _np.empty((rows, n_out), dtype)
        _tl_fwd_compare(layer, rows, split, &X[0, 0], &W[0, 0], &whole[0, 0], &halves[0, 0])
        _piece_rows_checked[key] = split if _np.array_equal(whole.base, halves.base) else n_out
    return _piece_rows_checked[key]


cdef void _tl_fwd_compare(TLLayer* layer, Py_ssize_t rows, Py_ssize_t split, floating* X,
                          const floating* Wb, floating* whole, floating* halves) noexcept nogil:
    """The layer's output for X and Wb (W with b as its last row), whole and in halves."""
    cdef TLLayer probe = layer[0]
    cdef int saved = _tl_blas_one()
    probe.w_off = 0
    probe.b_off = <Py_ssize_t>probe.n_in * probe.n_out
    probe.layer_input = X
    probe.out = whole
    _tl_fwd_columns(&probe, Wb, rows, 0, probe.n_out)
    probe.out = halves
    _tl_fwd_columns(&probe, Wb, rows, 0, split)
    _tl_fwd_columns(&probe, Wb, rows, split, probe.n_out)
    _tl_blas_back(saved)
