# Curvature kernels (included by _kernels.pyx): Pearlmutter's R-operator through
# a dense layer, the losses' output Hessians, per-row Jacobian blocks, and the
# dense algebra of Levenberg–Marquardt (SYRK, Cholesky solve).
#
# Design:
# * The specification is nncore.backend._curvature_numpy (same names, same
#   arguments); the wrappers in nncore.backend._cython validate before calling,
#   so these kernels never see a bad shape and never allocate (the Cholesky
#   workspace comes from the caller).
# * R-quantities hold m directions: (m, N, width) C-contiguous, i.e. an
#   (m*N, width) matrix, so RX·W and Rdelta·Wᵀ are one GEMM for all directions;
#   the products with the direction's own weights VW[k] are one GEMM each.
# * f' and f'' are taken from the layer output Y (as the first-order kernels);
#   relu and leaky_relu have f'' = 0 almost everywhere.

from scipy.linalg.cython_blas cimport ssyrk, dsyrk
from scipy.linalg.cython_lapack cimport spotrf, dpotrf, spotrs, dpotrs


cdef inline void _softplus_d12(floating y, floating* d1, floating* d2) noexcept nogil:
    """softplus: f' = sigmoid(s) = -expm1(-y), f'' = f' exp(-y); 1 and 0 above the threshold."""
    cdef floating threshold = 20, one = 1, zero = 0
    if y > threshold:
        d1[0] = one
        d2[0] = zero
    else:
        d1[0] = -_expm1(-y)
        d2[0] = d1[0] * _exp(-y)


cdef inline bint _act_d12(int act, floating y, floating* d1, floating* d2) noexcept nogil:
    """f'(S) and f''(S) from y = f(S); False for an activation it does not know
    (curvature_activations() asks it, so the backend refuses those codes)."""
    cdef floating one = 1, two = 2, zero = 0, slope = 0.01
    if act == RELU:
        d1[0] = one if y > 0 else zero
        d2[0] = zero
    elif act == LEAKY_RELU:
        d1[0] = one if y > 0 else slope
        d2[0] = zero
    elif act == SIGMOID:
        d1[0] = y * (one - y)
        d2[0] = d1[0] * (one - two * y)
    elif act == TANH:
        d1[0] = one - y * y
        d2[0] = -two * y * d1[0]
    elif act == ELU:
        d1[0] = one if y > 0 else y + one      # exp(s) for s <= 0
        d2[0] = zero if y > 0 else y + one
    elif act == SOFTPLUS:
        _softplus_d12(y, d1, d2)
    else:
        d1[0] = one
        d2[0] = zero
        return act == LINEAR
    return True


cdef void dense_rforward_k(const floating[:, ::1] X,      # IN  layer input (N, n_in)
                           const floating[:, :, ::1] RX,  # IN  R{X} (m, N, n_in), if has_rx
                           bint has_rx,
                           const floating[:, ::1] W,      # IN  (n_in, n_out)
                           const floating[:, :, ::1] VW,  # IN  direction weights (m, n_in, n_out)
                           const floating[:, ::1] Vb,     # IN  direction biases (m, n_out)
                           int act,
                           const floating[:, ::1] Y,      # IN  layer output (N, n_out)
                           floating[:, :, ::1] RS,        # OUT R{S} (m, N, n_out)
                           floating[:, :, ::1] RY) noexcept nogil:   # OUT R{Y}
    """RS := RX·W + X·VW + Vb;  RY := f'(S) ⊙ RS"""
    cdef blas_int m = <blas_int>VW.shape[0], n = <blas_int>X.shape[0]
    cdef blas_int d = <blas_int>X.shape[1], k = <blas_int>W.shape[1]
    cdef Py_ssize_t a, i, j
    cdef floating d1, d2
    cdef floating one = 1
    if has_rx:
        _gemm_rm(False, False, m * n, k, d, 1, &RX[0, 0, 0], d, &W[0, 0], k, 0, &RS[0, 0, 0], k)
    for a in range(m):
        _gemm_rm(False, False, n, k, d, 1, &X[0, 0], d, &VW[a, 0, 0], k,
                 one if has_rx else 0, &RS[a, 0, 0], k)
        for i in range(n):
            for j in range(k):
                RS[a, i, j] = RS[a, i, j] + Vb[a, j]
                _act_d12(act, Y[i, j], &d1, &d2)
                RY[a, i, j] = d1 * RS[a, i, j]


cdef void dense_rbackward_k(const floating[:, ::1] X,      # IN  layer input (N, n_in)
                            const floating[:, :, ::1] RX,  # IN  R{X} (m, N, n_in), if has_rx
                            bint has_rx,
                            const floating[:, ::1] W,      # IN  (n_in, n_out)
                            const floating[:, :, ::1] VW,  # IN  (m, n_in, n_out)
                            const floating[:, ::1] Y,      # IN  layer output (N, n_out)
                            const floating[:, :, ::1] RS,  # IN  R{S} (m, N, n_out)
                            floating[:, ::1] D,            # IN/OUT dJ/dY -> delta
                            floating[:, :, ::1] RD,        # IN/OUT R{dJ/dY} -> R{delta}
                            int act,
                            floating[:, :, ::1] RdW,       # OUT (m, n_in, n_out)
                            floating[:, ::1] Rdb,          # OUT (m, n_out)
                            floating[:, ::1] DX,           # OUT delta·Wᵀ (N, n_in), if has_dx
                            floating[:, :, ::1] RDX,       # OUT R{delta}·Wᵀ + delta·VWᵀ
                            bint has_dx) noexcept nogil:
    """Rδ := RD ⊙ f' + D ⊙ f'' ⊙ RS;  δ := D ⊙ f';  RdW := XᵀRδ + RXᵀδ;  Rdb := Σ Rδ;
    DX := δWᵀ;  RDX := RδWᵀ + δVWᵀ"""
    cdef blas_int m = <blas_int>VW.shape[0], n = <blas_int>X.shape[0]
    cdef blas_int d = <blas_int>X.shape[1], k = <blas_int>W.shape[1]
    cdef Py_ssize_t a, i, j
    cdef floating d1, d2, s
    cdef floating one = 1
    for a in range(m):
        for j in range(k):
            Rdb[a, j] = 0
        for i in range(n):
            for j in range(k):
                _act_d12(act, Y[i, j], &d1, &d2)
                s = RD[a, i, j] * d1 + (D[i, j] * d2) * RS[a, i, j]
                RD[a, i, j] = s
                Rdb[a, j] = Rdb[a, j] + s
    for i in range(n):
        for j in range(k):
            _act_d12(act, Y[i, j], &d1, &d2)
            D[i, j] = D[i, j] * d1
    for a in range(m):
        _gemm_rm(True, False, d, k, n, 1, &X[0, 0], d, &RD[a, 0, 0], k, 0, &RdW[a, 0, 0], k)
        if has_rx:
            _gemm_rm(True, False, d, k, n, 1, &RX[a, 0, 0], d, &D[0, 0], k, one,
                     &RdW[a, 0, 0], k)
    if has_dx:
        _gemm_rm(False, True, n, d, k, 1, &D[0, 0], k, &W[0, 0], k, 0, &DX[0, 0], d)
        _gemm_rm(False, True, m * n, d, k, 1, &RD[0, 0, 0], k, &W[0, 0], k, 0,
                 &RDX[0, 0, 0], d)
        for a in range(m):
            _gemm_rm(False, True, n, d, k, 1, &D[0, 0], k, &VW[a, 0, 0], k, one,
                     &RDX[a, 0, 0], d)


cdef void loss_mse_rop_k(const floating[:, :, ::1] Rout,   # IN  (m, N, K)
                         floating[:, :, ::1] Rgrad) noexcept nogil:   # OUT
    """Rgrad := Rout / N"""
    cdef Py_ssize_t a, i, j
    cdef floating n = <floating>Rout.shape[1]
    for a in range(Rout.shape[0]):
        for i in range(Rout.shape[1]):
            for j in range(Rout.shape[2]):
                Rgrad[a, i, j] = Rout[a, i, j] / n


cdef void loss_softmax_ce_rop_k(const floating[:, ::1] logits,    # IN  (N, K)
                                const floating[:, :, ::1] Rlogits,  # IN  (m, N, K)
                                floating[:, :, ::1] Rgrad,        # OUT (m, N, K)
                                floating[::1] p) noexcept nogil:  # scratch (K,)
    """Rgrad_n := (diag p_n − p_n p_nᵀ) Rlogits_n / N,  p = softmax(logits)"""
    cdef Py_ssize_t a, i, j, K = logits.shape[1]
    cdef floating mx, tot, pv
    cdef floating n = <floating>logits.shape[0]
    for i in range(logits.shape[0]):
        mx = _row_max(&logits[i, 0], K)
        tot = 0
        for j in range(K):
            p[j] = _exp(logits[i, j] - mx)
            tot = tot + p[j]
        for j in range(K):
            p[j] = p[j] / tot
        for a in range(Rlogits.shape[0]):
            pv = 0
            for j in range(K):
                pv = pv + p[j] * Rlogits[a, i, j]
            for j in range(K):
                Rgrad[a, i, j] = p[j] * (Rlogits[a, i, j] - pv) / n


cdef void loss_bce_rop_k(const floating[:, ::1] logits,      # IN  (N, K)
                         const floating[:, :, ::1] Rlogits,  # IN  (m, N, K)
                         floating[:, :, ::1] Rgrad) noexcept nogil:   # OUT
    """Rgrad := s (1 − s) Rlogits / N,  s = sigmoid(logits)"""
    cdef Py_ssize_t a, i, j
    cdef floating s, one = 1
    cdef floating n = <floating>logits.shape[0]
    for i in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            s = _sigmoid(logits[i, j])
            s = s * (one - s)
            for a in range(Rlogits.shape[0]):
                Rgrad[a, i, j] = s * Rlogits[a, i, j] / n


cdef void jacobian_rows_k(const floating[:, ::1] A,    # IN  layer input (R, a)
                          const floating[:, ::1] D,    # IN  layer delta (R, d)
                          floating[:, ::1] out,        # OUT rows (R, n), columns off..
                          Py_ssize_t off) noexcept nogil:
    """out[r, off + i·d + j] := A[r, i]·D[r, j];  out[r, off + a·d + j] := D[r, j]"""
    cdef Py_ssize_t r, i, j, na = A.shape[1], nd = D.shape[1]
    cdef floating v
    cdef floating* o
    for r in range(A.shape[0]):
        o = &out[r, off]
        for i in range(na):
            v = A[r, i]
            for j in range(nd):
                o[i * nd + j] = v * D[r, j]
        for j in range(nd):
            o[na * nd + j] = D[r, j]


cdef void ggn_rows_softmax_k(const floating[:, ::1] P,    # IN  probabilities (N, K)
                             floating[:, ::1] J,          # IN/OUT rows (N·K, n)
                             floating[::1] mean) noexcept nogil:   # scratch (n,)
    """J_n := (diag √p_n − √p_n p_nᵀ) J_n per sample (K rows each)"""
    cdef Py_ssize_t i, j, c, K = P.shape[1], n = J.shape[1]
    cdef floating q
    for i in range(P.shape[0]):
        for c in range(n):
            mean[c] = 0
        for j in range(K):
            for c in range(n):
                mean[c] = mean[c] + P[i, j] * J[i * K + j, c]
        for j in range(K):
            q = _sqrt(P[i, j])
            for c in range(n):
                J[i * K + j, c] = (J[i * K + j, c] - mean[c]) * q


cdef void syrk_k(const floating[:, ::1] A,    # IN  (R, n)
                 floating[:, ::1] C,          # IN/OUT (n, n), symmetric
                 floating alpha, floating beta) noexcept nogil:
    """C := α AᵀA + β C (one triangle by BLAS SYRK, then mirrored)"""
    cdef blas_int n = <blas_int>A.shape[1], r = <blas_int>A.shape[0]
    cdef char uplo = b'U', trans = b'N'
    cdef Py_ssize_t i, j
    # Row-major A (R x n) is column-major Aᵀ (n x R): C = Aᵀ·A is 'N' with k = R.
    if floating is float:
        ssyrk(&uplo, &trans, &n, &r, &alpha, <float*>&A[0, 0], &n, &beta, &C[0, 0], &n)
    else:
        dsyrk(&uplo, &trans, &n, &r, &alpha, <double*>&A[0, 0], &n, &beta, &C[0, 0], &n)
    # Column-major upper = row-major lower triangle: copy it to the upper one.
    for i in range(n):
        for j in range(i + 1, n):
            C[i, j] = C[j, i]


cdef blas_int cholesky_solve_k(floating[:, ::1] L,     # IN/OUT copy of A -> its factor
                          floating[::1] x) noexcept nogil:   # IN/OUT b -> A⁻¹b
    """x := A⁻¹ x by Cholesky (LAPACK potrf/potrs); returns LAPACK's info"""
    cdef blas_int n = <blas_int>x.shape[0], one = 1, info = 0
    cdef char uplo = b'L'
    if floating is float:
        spotrf(&uplo, &n, &L[0, 0], &n, &info)
        if info == 0:
            spotrs(&uplo, &n, &one, &L[0, 0], &n, &x[0], &n, &info)
    else:
        dpotrf(&uplo, &n, &L[0, 0], &n, &info)
        if info == 0:
            dpotrs(&uplo, &n, &one, &L[0, 0], &n, &x[0], &n, &info)
    return info


# --------------------------------------------------------------------------- entry points

def curvature_activations():
    """The activation codes whose f' and f'' ``_act_d12`` computes: the ones the
    compiled R-operator runs (nncore.backend._cython refuses the others)."""
    cdef double d1, d2
    cdef int code
    known = []
    for code in range(N_ACT):
        if _act_d12(code, 0.5, &d1, &d2):
            known.append(code)
    return frozenset(known)


cdef int _require_directions(const floating[:, :, ::1] R, Py_ssize_t m, Py_ssize_t n,
                             Py_ssize_t width, str what) except -1:
    """R is an (m, n, width) array of directions."""
    if R is None or R.shape[0] != m or R.shape[1] != n or R.shape[2] != width:
        raise ValueError(f"nncore._kernels: {what} must have shape {(m, n, width)}")
    return 0


cdef int _require_dense_r(const floating[:, ::1] X, const floating[:, ::1] W,
                          const floating[:, :, ::1] VW, const floating[:, ::1] Y, int act,
                          str kernel) except -1:
    """The sizes a dense R-kernel relies on: X (N, n_in), W (n_in, n_out), VW (m, n_in,
    n_out), Y (N, n_out), none empty, within blas_int (m·N too); an activation whose
    f'' _act_d12 knows."""
    cdef floating d1, d2
    cdef Py_ssize_t N = X.shape[0], n_in = X.shape[1], n_out = W.shape[1], m = VW.shape[0]
    if not (N > 0 and n_in > 0 and n_out > 0 and m > 0 and W.shape[0] == n_in
            and VW.shape[1] == n_in and VW.shape[2] == n_out and Y.shape[0] == N
            and Y.shape[1] == n_out):
        raise ValueError(f"nncore._kernels: {kernel}: X (N, n_in), W (n_in, n_out), "
                         "VW (m, n_in, n_out), Y (N, n_out), none empty")
    _require_blas(max(m * N, n_in, n_out), kernel)
    _require_act(act, kernel)
    if not _act_d12(act, <floating>0.5, &d1, &d2):
        raise ValueError(f"nncore._kernels: {kernel}: no second derivative for activation {act}")
    return 0


def dense_rforward(const floating[:, ::1] X, const floating[:, :, ::1] RX, bint has_rx,
                   const floating[:, ::1] W, const floating[:, :, ::1] VW,
                   const floating[:, ::1] Vb, int act, const floating[:, ::1] Y,
                   floating[:, :, ::1] RS, floating[:, :, ::1] RY):
    cdef Py_ssize_t N = X.shape[0], n_in = X.shape[1], n_out = W.shape[1], m = VW.shape[0]
    _require_dense_r(X, W, VW, Y, act, "dense_rforward")
    if has_rx:
        _require_directions(RX, m, N, n_in, "dense_rforward: RX")
    _require(Vb.shape[0] == m and Vb.shape[1] == n_out, "dense_rforward: Vb must be (m, n_out)")
    _require_directions(RS, m, N, n_out, "dense_rforward: RS")
    _require_directions(RY, m, N, n_out, "dense_rforward: RY")
    with nogil:
        dense_rforward_k(X, RX, has_rx, W, VW, Vb, act, Y, RS, RY)


def dense_rbackward(const floating[:, ::1] X, const floating[:, :, ::1] RX, bint has_rx,
                    const floating[:, ::1] W, const floating[:, :, ::1] VW,
                    const floating[:, ::1] Y, const floating[:, :, ::1] RS,
                    floating[:, ::1] D, floating[:, :, ::1] RD, int act,
                    floating[:, :, ::1] RdW, floating[:, ::1] Rdb, floating[:, ::1] DX,
                    floating[:, :, ::1] RDX, bint has_dx):
    cdef Py_ssize_t N = X.shape[0], n_in = X.shape[1], n_out = W.shape[1], m = VW.shape[0]
    _require_dense_r(X, W, VW, Y, act, "dense_rbackward")
    if has_rx:
        _require_directions(RX, m, N, n_in, "dense_rbackward: RX")
    _require_directions(RS, m, N, n_out, "dense_rbackward: RS")
    _require_directions(RD, m, N, n_out, "dense_rbackward: RD")
    _require_directions(RdW, m, n_in, n_out, "dense_rbackward: RdW")
    _require(D.shape[0] == N and D.shape[1] == n_out and Rdb.shape[0] == m
             and Rdb.shape[1] == n_out, "dense_rbackward: D (N, n_out), Rdb (m, n_out)")
    if has_dx:
        _require(DX is not None and DX.shape[0] == N and DX.shape[1] == n_in,
                 "dense_rbackward: DX must be (N, n_in)")
        _require_directions(RDX, m, N, n_in, "dense_rbackward: RDX")
    with nogil:
        dense_rbackward_k(X, RX, has_rx, W, VW, Y, RS, D, RD, act, RdW, Rdb, DX, RDX, has_dx)


cdef int _require_logits_rop(const floating[:, ::1] logits, const floating[:, :, ::1] Rlogits,
                             floating[:, :, ::1] Rgrad, str kernel) except -1:
    """logits (the outputs, N x K) non-empty, Rlogits and Rgrad (m, N, K)."""
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"nncore._kernels: {kernel}: empty outputs")
    _require_directions(Rlogits, Rlogits.shape[0], logits.shape[0], logits.shape[1],
                        "Rlogits (m, N, K)")
    _require_directions(Rgrad, Rlogits.shape[0], logits.shape[0], logits.shape[1],
                        "Rgrad (Rlogits' shape)")
    return 0


# The loss R-operators share one signature, (out (N, K), Rout (m, N, K), Rgrad
# (m, N, K)), so nncore.backend._cython wraps every one the loss registry names
# (Loss.rop_kernel) with one generic checked function.

def loss_mse_rop(const floating[:, ::1] out, const floating[:, :, ::1] Rout,
                 floating[:, :, ::1] Rgrad):
    _require_logits_rop(out, Rout, Rgrad, "loss_mse_rop")
    with nogil:
        loss_mse_rop_k(Rout, Rgrad)


def loss_softmax_ce_rop(const floating[:, ::1] logits, const floating[:, :, ::1] Rlogits,
                        floating[:, :, ::1] Rgrad):
    _require_logits_rop(logits, Rlogits, Rgrad, "loss_softmax_ce_rop")
    # one row's probabilities, K elements
    cdef floating[::1] probs = _np.empty(logits.shape[1],
                                         _np.float64 if floating is double else _np.float32)
    with nogil:
        loss_softmax_ce_rop_k(logits, Rlogits, Rgrad, probs)


def loss_bce_rop(const floating[:, ::1] logits, const floating[:, :, ::1] Rlogits,
                 floating[:, :, ::1] Rgrad):
    _require_logits_rop(logits, Rlogits, Rgrad, "loss_bce_rop")
    with nogil:
        loss_bce_rop_k(logits, Rlogits, Rgrad)


def jacobian_rows(const floating[:, ::1] A, const floating[:, ::1] D, floating[:, ::1] out,
                  Py_ssize_t offset):
    _require(D.shape[0] == A.shape[0] and out.shape[0] == A.shape[0] and offset >= 0
             and offset + A.shape[1] * D.shape[1] + D.shape[1] <= out.shape[1],
             "jacobian_rows: A, D, out with one row count; the block must fit out's columns")
    with nogil:
        jacobian_rows_k(A, D, out, offset)


def ggn_rows_softmax(const floating[:, ::1] P, floating[:, ::1] J, floating[::1] scratch):
    _require(J.shape[0] == P.shape[0] * P.shape[1] and scratch.shape[0] >= J.shape[1],
             "ggn_rows_softmax: J needs N*K rows, scratch J's width")
    with nogil:
        ggn_rows_softmax_k(P, J, scratch)


def syrk(const floating[:, ::1] A, floating[:, ::1] C, double alpha, double beta):
    _require(A.shape[0] > 0 and A.shape[1] > 0 and C.shape[0] == A.shape[1]
             and C.shape[1] == A.shape[1], "syrk: A (R, n) non-empty, C (n, n)")
    _require_blas(max(A.shape[0], A.shape[1]), "syrk")
    with nogil:
        syrk_k(A, C, <floating>alpha, <floating>beta)


def cholesky_solve(floating[:, ::1] L, floating[::1] x):
    """L: a copy of A (overwritten by the factor); x: b on entry. Returns LAPACK info."""
    cdef blas_int info
    _require(x.shape[0] > 0 and L.shape[0] == x.shape[0] and L.shape[1] == x.shape[0],
             "cholesky_solve: L (n, n), x (n,), n > 0")
    _require_blas(x.shape[0], "cholesky_solve")
    with nogil:
        info = cholesky_solve_k(L, x)
    return info
