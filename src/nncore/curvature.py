"""Exact curvature of a network's loss: Hessian-, Gauss–Newton- and Jacobian-vector
products by Pearlmutter's R-operator, and the matrices built from them.

Design
------
* Everything is float64, whatever the network's dtype: a :class:`Curvature`
  holds a float64 copy of the data and evaluates at a float64 parameter
  vector ``x`` (the layout of ``net.params``), so a float32 network gets the
  curvature of its own loss function without float32 rounding.
* The objective is ``net.loss``: mean data loss plus the weights-only penalty
  ``l1 sum|w| + l2 sum w^2``. The penalty's Hessian is ``2 l2`` on the weights
  (L1's is 0 almost everywhere); dropout is off.
* Products carry ``m`` directions at once (``V`` of shape ``(m, n)``) through
  the backend's ``dense_rforward`` / ``dense_rbackward`` kernels, over row
  chunks whose size bounds memory (``m * rows * widths`` elements), combined
  with weights ``rows / N`` like :meth:`Network.loss`.
* The generalised Gauss–Newton matrix ``G = sum_n J_n^T H_n J_n`` uses the
  per-sample Hessian ``H_n`` of the loss with respect to the outputs (identity
  for mse, ``diag p - p p^T`` for softmax cross-entropy, ``diag s(1-s)`` for
  binary cross-entropy), applied by the loss's registry entry
  (:meth:`nncore.losses.Loss.hessian_product`, ``sqrt_hessian_rows``), so a new
  loss brings its own curvature. Products ``G v`` need no matrix; the dense ``G`` is
  accumulated over row blocks of the Jacobian (``syrk``), never the whole
  ``(N K, n)`` Jacobian.
* No state is shared between calls (fresh arrays per call), so several threads
  may query one network at once.
"""

from __future__ import annotations

import numpy as np

from . import backend as _backend
from . import losses as _losses

__all__ = ["Curvature", "hvp", "hessian", "jacobian", "gnvp"]

# Elements per R-quantity chunk (m directions x rows x widths): bounds memory.
_CHUNK_BUDGET = 1 << 21
# Directions per Hessian block (one batched product per block of columns).
_HESSIAN_BLOCK = 64

def _layer_plan(curv):
    """``(offset, n_in, n_out, act, skip)`` per dense step, from each layer's
    :meth:`~nncore.layers.Layer.curvature_plan` (``skip``: a Residual's shortcut
    adds the step's input to its output)."""
    plan = []
    for i, layer in enumerate(curv._net_layers):
        mine = layer.curvature_plan()
        if mine is None:
            raise ValueError(f"no exact curvature for layer {i} ({layer!r}): curvature "
                             "(hvp, hessian, jacobian, Levenberg-Marquardt, Newton) supports "
                             "Dense, Dropout and Residual(Dense) layers")
        plan.extend(mine)
    return plan



def penalty_terms(net):
    """The regulariser's ``l1``, ``l2`` and the 0/1 mask of the parameters it
    penalises (weights, not biases): what every curvature evaluator adds."""
    reg = net.regularizer
    mask = np.zeros(int(net.n_params))
    for start, stop in net._segments:
        mask[start:stop] = 1.0
    return (0.0 if reg is None else float(reg.l1), 0.0 if reg is None else float(reg.l2), mask)

class Curvature:
    """Exact curvature of ``net.loss`` on fixed data ``(X, T)``.

    Parameters
    ----------
    net : Network
        The architecture, loss and regulariser (its parameters are not used:
        every method takes the point ``x``).
    X : ndarray, shape (N, n_in)
        Validated inputs (any float dtype; copied to float64).
    T : ndarray
        Validated targets: int64 labels ``(N,)`` or float rows ``(N, K)``.
    sample_weight : ndarray, shape (N,), optional
        Checked float64 sample weights: the objective's data loss is then
        ``sum w_n l_n / sum w_n`` (as ``fit`` trains it), and the sums of
        Levenberg–Marquardt (``gauss_newton_sum``, ``total_weight``) count
        row ``n`` ``w_n`` times (its rows of ``J`` and ``e`` scaled by ``sqrt(w_n)``),
        so integer weights equal repeated rows.
    """

    def __init__(self, net, X, T, sample_weight=None):
        self.n = int(net.n_params)
        self.n_out = int(net.n_out)
        self.loss_name = net.loss_name
        self._net_layers = net.layers
        self._plan_cache = None
        # Kept as given (validated); row chunks are converted to float64 on use,
        # so a large float32 data set is never copied whole.
        self.X = X
        self.T = T
        self.N = X.shape[0]
        self.l1, self.l2, self.weight_mask = penalty_terms(net)
        # The loss registry entry knows its gradient and output-Hessian kernels.
        self.loss = _losses.get(self.loss_name)
        self.sample_weight = sample_weight
        # Row coefficients w / sum(w) of the weighted mean (None: the plain mean), and
        # the number of samples the weights stand for (Levenberg–Marquardt's N).
        self._coef = None if sample_weight is None else _losses.row_coefficients(sample_weight)
        self.total_weight = (float(self.N) if sample_weight is None
                             else float(np.cumsum(sample_weight)[-1]))

    # ------------------------------------------------------------------ pieces

    @property
    def _plan(self):
        # Built on first use, so fit can attach a Curvature to any network and
        # only an optimizer that asks for curvature meets an unsupported layer.
        if self._plan_cache is None:
            self._plan_cache = _layer_plan(self)
        return self._plan_cache

    @property
    def _widths(self):
        # a shortcut's sum is one more (rows, n_out) array per direction
        return sum(n_in + (4 if skip else 3) * n_out for _, n_in, n_out, _, skip in self._plan)

    def _views(self, x):
        """Per-step ``(W, b)`` views of a flat ``(n,)`` or ``(m, n)`` array."""
        out = []
        for off, n_in, n_out, _, _ in self._plan:
            nw = n_in * n_out
            W = x[..., off:off + nw].reshape(x.shape[:-1] + (n_in, n_out))
            out.append((W, x[..., off + nw:off + nw + n_out]))
        return out

    def _forward(self, params, X):
        """Step inputs ``A[0..L-1]`` with the network's output as ``A[L]``, and the
        steps' activations ``Y[0..L-1]`` (float64); a shortcut step's output is
        ``A[l] + Y[l]``."""
        be = _backend.current()
        A, Y = [], []
        a = X
        for (W, b), (_, _, n_out, act, skip) in zip(params, self._plan):
            y = np.empty((a.shape[0], n_out))
            be.dense_forward(a, np.ascontiguousarray(W), b, act, y)
            A.append(a)
            Y.append(y)
            a = a + y if skip else y
        A.append(a)
        return A, Y

    def _rforward(self, params, dirs, A, Y):
        """``RS[l]`` and ``RO[l]``, the R-derivative of step ``l``'s output
        (``RY[l]``, plus the input's for a shortcut), for the directions ``dirs``."""
        be = _backend.current()
        m = dirs[0][0].shape[0]
        RS, RO = [], []
        ra = None
        for (W, _), (VW, Vb), a, y, (_, _, n_out, act, skip) in zip(params, dirs, A, Y,
                                                                    self._plan):
            rs = np.empty((m, a.shape[0], n_out))
            ry = np.empty_like(rs)
            be.dense_rforward(a, ra, np.ascontiguousarray(W), np.ascontiguousarray(VW),
                              np.ascontiguousarray(Vb), act, y, rs, ry)
            if skip and ra is not None:     # the input X has no R-derivative
                ry += ra
            RS.append(rs)
            RO.append(ry)
            ra = ry
        return RS, RO

    def _rbackward(self, params, dirs, A, Y, RS, RO, D, RD, out, lowest=0):
        """Accumulate ``R{grad}`` of the chunk into ``out`` (m, n); ``D`` is the
        output gradient (zeros for Gauss–Newton), ``RD`` its R-derivative. Layers
        below ``lowest`` are not visited (their R-quantities must be zero: the
        directions lie in layers ``>= lowest``) and their rows are left as they are."""
        be = _backend.current()
        m = RD.shape[0]
        for l in range(len(self._plan) - 1, lowest - 1, -1):
            off, n_in, n_out, act, skip = self._plan[l]
            W = np.ascontiguousarray(params[l][0])
            VW = np.ascontiguousarray(dirs[l][0])
            rdw = np.empty((m, n_in, n_out))
            rdb = np.empty((m, n_out))
            first = l == lowest       # nothing below: no input R-quantity, no DX
            dx = None if first else np.empty((A[l].shape[0], n_in))
            rdx = None if first else np.empty((m, A[l].shape[0], n_in))
            # the kernel overwrites D and RD; a shortcut passes them on as they are
            shortcut = (D.copy(), RD.copy()) if skip and not first else None
            be.dense_rbackward(A[l], None if first else RO[l - 1], W, VW, Y[l], RS[l], D, RD,
                               act, rdw, rdb, dx, rdx)
            nw = n_in * n_out
            out[:, off:off + nw] += rdw.reshape(m, nw)
            out[:, off + nw:off + nw + n_out] += rdb
            if shortcut is not None:
                dx += shortcut[0]
                rdx += shortcut[1]
            D, RD = dx, rdx

    def _chunks(self, m):
        rows = max(1, _CHUNK_BUDGET // max(1, m * self._widths))
        for s in range(0, self.N, rows):
            yield s, min(s + rows, self.N)

    def _rows(self, s, e):
        return np.ascontiguousarray(self.X[s:e], dtype=np.float64)

    def _output_grad(self, out, s, e, weighted=True):
        """Gradient of the chunk's mean data loss with respect to the outputs (weighted:
        of the whole set's weighted loss, restricted to the chunk's rows)."""
        be = _backend.current()
        grad = np.empty_like(out)
        t = self.T[s:e]
        t = np.ascontiguousarray(t, dtype=np.int64 if t.ndim == 1 else np.float64)
        if self._coef is None or not weighted:
            self.loss.value_and_grad(be, out, t, grad)
        else:
            self.loss.value_and_grad(be, out, t, grad, self._coef[s:e])
        return grad

    def _weigh_rows(self, RG, s, e):
        """Sample weights on an output-Hessian product of rows ``s:e``, in place: the
        kernels divide by the chunk's rows; weighted rows count ``c_n`` instead."""
        if self._coef is not None:
            RG *= (self._coef[s:e] * (e - s))[None, :, None]

    def _chunk_share(self, s, e):
        """A chunk's factor in the whole set's product: ``rows / N``, or 1 with sample
        weights (the row coefficients are the whole set's already)."""
        return (e - s) / self.N if self._coef is None else 1.0

    def residuals(self, x):
        """``N`` times the gradient of the mean data loss with respect to the
        outputs, ``(N, K)``: ``out - d`` for mse, ``p - t`` for the cross-entropies
        (Levenberg–Marquardt's ``e``; the raw residuals, sample weights or not)."""
        x = self._check_x(x)
        params = self._views(x)
        E = np.empty((self.N, self.n_out))
        for s, e in self._chunks(1):
            A, _ = self._forward(params, self._rows(s, e))
            E[s:e] = self._output_grad(A[-1], s, e, weighted=False) * (e - s)
        return E

    def _check_x(self, x):
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape ({self.n},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or infinite values")
        return x

    def _check_V(self, V):
        V = np.asarray(V)
        if V.dtype.kind not in "biuf":
            raise TypeError(f"v must be numeric, got dtype {V.dtype}")
        single = V.ndim == 1
        V = np.ascontiguousarray(np.atleast_2d(V), dtype=np.float64)
        if V.ndim != 2 or V.shape[1] != self.n or V.shape[0] == 0:
            raise ValueError(f"v must have shape ({self.n},) or (m, {self.n}), got {np.shape(V)}")
        if not np.all(np.isfinite(V)):
            raise ValueError("v contains NaN or infinite values")
        return V, single

    # ------------------------------------------------------------------ products

    def _product(self, x, V, gauss_newton):
        x = self._check_x(x)
        V, single = self._check_V(V)
        be = _backend.current()
        m = V.shape[0]
        result = np.zeros((m, self.n))
        params, dirs = self._views(x), self._views(V)
        for s, e in self._chunks(m):
            A, Y = self._forward(params, self._rows(s, e))
            RS, RO = self._rforward(params, dirs, A, Y)
            RG = np.empty_like(RO[-1])
            self.loss.hessian_product(be, A[-1], RO[-1], RG)
            self._weigh_rows(RG, s, e)
            D = np.zeros_like(A[-1]) if gauss_newton else self._output_grad(A[-1], s, e)
            part = np.zeros((m, self.n))
            self._rbackward(params, dirs, A, Y, RS, RO, D, RG, part)
            result += self._chunk_share(s, e) * part
        if self.l2 != 0.0:
            result += (2.0 * self.l2) * (V * self.weight_mask)
        return result[0] if single else result

    def hvp(self, x, V):
        """Exact Hessian-vector products ``H(x) v`` of ``net.loss``.

        Parameters
        ----------
        x : ndarray, shape (n,)
            The point (float64 parameters in the layout of ``net.params``).
        V : ndarray, shape (n,) or (m, n)
            One direction or ``m`` of them (rows).

        Returns
        -------
        ndarray, float64, the shape of ``V``
        """
        return self._product(x, V, gauss_newton=False)

    def gnvp(self, x, V):
        """Generalised Gauss–Newton products ``G(x) v = J^T H_loss J v`` (plus the
        penalty's Hessian ``2 l2`` on the weights), shaped like :meth:`hvp`."""
        return self._product(x, V, gauss_newton=True)

    def jvp(self, x, V):
        """Jacobian-vector products of the outputs: ``(m, N, K)`` (``(N, K)`` for 1-D ``V``)."""
        x = self._check_x(x)
        V, single = self._check_V(V)
        out = np.empty((V.shape[0], self.N, self.n_out))
        params, dirs = self._views(x), self._views(V)
        for s, e in self._chunks(V.shape[0]):
            A, Y = self._forward(params, self._rows(s, e))
            _, RO = self._rforward(params, dirs, A, Y)
            out[:, s:e] = RO[-1]
        return out[0] if single else out

    def vjp(self, x, U):
        """Vector-Jacobian products ``J^T u`` of the outputs: ``U`` of shape
        ``(N, K)`` or ``(m, N, K)`` -> ``(n,)`` or ``(m, n)``."""
        x = self._check_x(x)
        U = np.asarray(U, dtype=np.float64)
        single = U.ndim == 2
        U = np.ascontiguousarray(U[None] if single else U)
        if U.ndim != 3 or U.shape[1:] != (self.N, self.n_out) or U.shape[0] == 0:
            raise ValueError(f"u must have shape ({self.N}, {self.n_out}) or "
                             f"(m, {self.N}, {self.n_out}), got {U.shape}")
        m = U.shape[0]
        result = np.zeros((m, self.n))
        params = self._views(x)
        zero_dirs = self._views(np.zeros((m, self.n)))
        for s, e in self._chunks(m):
            A, Y = self._forward(params, self._rows(s, e))
            RS = [np.zeros((m,) + y.shape) for y in Y]
            RO = [np.zeros((m,) + y.shape) for y in Y]
            RD = np.array(U[:, s:e])
            self._rbackward(params, zero_dirs, A, Y, RS, RO, np.zeros_like(A[-1]), RD, result)
        return result[0] if single else result

    # ------------------------------------------------------------------ matrices

    def block_rows(self):
        """Samples per Jacobian block: ``rows * K * (n + widths)`` stays within budget."""
        return max(1, _CHUNK_BUDGET // (self.n_out * (self.n + self._widths)))

    def jacobian_block(self, x, s, e, outputs=None):
        """Jacobian of the outputs of samples ``s:e``: ``((e-s) K, n)``, rows
        sample-major (row ``i K + k`` is ``d out[s+i, k] / d x``).

        With ``outputs`` (a list), the block's outputs ``(e-s, K)`` are appended.
        """
        be = _backend.current()
        params = self._views(x)
        A, Y = self._forward(params, self._rows(s, e))
        K = self.n_out
        R = (e - s) * K
        J = np.empty((R, self.n))
        RD = np.zeros((1, R, K))
        RD[0, np.arange(R), np.tile(np.arange(K), e - s)] = 1.0
        for l in range(len(self._plan) - 1, -1, -1):
            off, n_in, n_out, act, skip = self._plan[l]
            # One row per (sample, output); with one output the rows are the samples.
            a = A[l] if K == 1 else np.repeat(A[l], K, axis=0)
            y = Y[l] if K == 1 else np.repeat(Y[l], K, axis=0)
            dx = None if l == 0 else np.empty((R, n_in))
            rdx = None if l == 0 else np.empty((1, R, n_in))
            shortcut = RD.copy() if skip and l > 0 else None   # the kernel overwrites RD
            be.dense_rbackward(a, None, np.ascontiguousarray(params[l][0]),
                               np.zeros((1, n_in, n_out)), y, np.zeros((1, R, n_out)),
                               np.zeros((R, n_out)), RD, act, np.empty((1, n_in, n_out)),
                               np.empty((1, n_out)), dx, rdx)
            be.jacobian_rows(a, RD[0], J, off)
            if shortcut is not None:
                rdx += shortcut
            RD = rdx
        if outputs is not None:
            outputs.append(A[-1])
        return J

    def jacobian(self, x):
        """The whole ``(N K, n)`` Jacobian of the outputs, built in row blocks."""
        x = self._check_x(x)
        J = np.empty((self.N * self.n_out, self.n))
        step = self.block_rows()
        K = self.n_out
        for s in range(0, self.N, step):
            e = min(s + step, self.N)
            J[s * K:e * K] = self.jacobian_block(x, s, e)
        return J

    def gauss_newton_sum(self, x):
        """``sum_n w_n J_n^T H_n J_n`` over all samples (``N`` times the mean-loss
        Gauss–Newton matrix, penalty excluded; ``w_n = 1`` unweighted, else
        ``total_weight`` times the weighted mean's), ``H_n`` the Hessian of the
        sample's loss term with respect to its outputs; accumulated block by block
        (``syrk``), never holding the whole Jacobian."""
        x = self._check_x(x)
        be = _backend.current()
        G = np.zeros((self.n, self.n))
        step = self.block_rows()
        for s in range(0, self.N, step):
            e = min(s + step, self.N)
            outs = []
            J = self.jacobian_block(x, s, e, outs)
            self.loss.sqrt_hessian_rows(be, outs[0], J)
            if self.sample_weight is not None:
                # Row n counts w_n times: its K rows of J scaled by sqrt(w_n).
                J *= np.repeat(np.sqrt(self.sample_weight[s:e]), self.n_out)[:, None]
            be.syrk(J, G, 1.0, 1.0)
        return G

    def hessian(self, x, block=_HESSIAN_BLOCK):
        """The exact ``(n, n)`` Hessian of ``net.loss``, from R-operator passes
        with blocks of ``block`` unit directions.

        Structured: the directions of a block lie in one layer ``l``, so the
        R-quantities of the layers below ``l`` are zero (skipped), ``R{S_l}`` is a
        copy of one input column (no GEMM), and the backward pass stops at ``l``:
        it yields the rows of layers ``>= l``; the rows of the layers below are the
        transposes of blocks already computed for those layers' directions
        (symmetry). The diagonal blocks are symmetrised."""
        x = self._check_x(x)
        if not self._steps_tile_params():
            return self._hessian_by_products(x, block)
        H = np.empty((self.n, self.n))
        params = self._views(x)
        for l, (off, n_in, n_out, _, _) in enumerate(self._plan):
            stop = off + (n_in + 1) * n_out
            for s in range(off, stop, block):
                e = min(s + block, stop)
                H[off:, s:e] = self._layer_columns(params, l, s, e).T
            diag = H[off:stop, off:stop]
            diag += diag.T.copy()
            diag *= 0.5
            H[off:stop, stop:] = H[stop:, off:stop].T
        H.flat[:: self.n + 1] += (2.0 * self.l2) * self.weight_mask
        if not np.all(np.isfinite(H)):
            raise ValueError("the Hessian is not finite at these parameters")
        return H

    def _steps_tile_params(self):
        """The structured Hessian needs the steps' parameters to follow one another
        in plan order and to cover the whole vector."""
        end = 0
        for off, n_in, n_out, _, _ in self._plan:
            if off != end:
                return False
            end = off + (n_in + 1) * n_out
        return end == self.n

    def _hessian_by_products(self, x, block):
        """The Hessian as ``n`` Hessian-vector products (blocks of unit vectors)."""
        H = np.empty((self.n, self.n))
        for s in range(0, self.n, block):
            e = min(s + block, self.n)
            V = np.zeros((e - s, self.n))
            V[np.arange(e - s), np.arange(s, e)] = 1.0
            H[s:e] = self.hvp(x, V)
        H += H.T
        H *= 0.5
        if not np.all(np.isfinite(H)):
            raise ValueError("the Hessian is not finite at these parameters")
        return H

    def _unit_rs(self, a_in, l, s, e):
        """``R{S_l}`` for the unit directions of parameters ``s:e`` of layer ``l``:
        column ``j`` of direction ``W[i, j]`` is input column ``i``; of ``b[j]``, ones."""
        off, n_in, n_out, _, _ = self._plan[l]
        local = np.arange(s, e) - off
        is_w = local < n_in * n_out
        j = np.where(is_w, local % n_out, local - n_in * n_out)
        rs = np.zeros((e - s, a_in.shape[0], n_out))
        rs[np.nonzero(is_w)[0], :, j[is_w]] = a_in[:, local[is_w] // n_out].T
        rs[np.nonzero(~is_w)[0], :, j[~is_w]] = 1.0
        return rs

    def _layer_columns(self, params, l, s, e):
        """Rows ``off_l:`` of the Hessian columns ``s:e`` (parameters of layer ``l``),
        data part only: ``(e - s, n - off_l)``."""
        be = _backend.current()
        m, plan = e - s, self._plan
        top = len(plan)
        out = np.zeros((m, self.n))
        zero_dirs = [(np.zeros((m, n_in, n_out)), np.zeros((m, n_out)))
                     for _, n_in, n_out, _, _ in plan]
        for r0, r1 in self._chunks(m):
            A, Y = self._forward(params, self._rows(r0, r1))
            # RO[k]: R of step k's output (its activation's, plus its input's
            # through a shortcut; step l's input does not depend on its parameters)
            RS, RO = [None] * top, [None] * top
            RS[l] = self._unit_rs(A[l], l, s, e)
            d1 = np.empty_like(Y[l])
            be.activation_backward(Y[l], np.ones_like(Y[l]), plan[l][3], d1)
            RO[l] = RS[l] * d1
            for k in range(l + 1, top):
                RS[k], RO[k] = np.empty((m,) + Y[k].shape), np.empty((m,) + Y[k].shape)
                be.dense_rforward(A[k], RO[k - 1], np.ascontiguousarray(params[k][0]),
                                  zero_dirs[k][0], zero_dirs[k][1], plan[k][3], Y[k],
                                  RS[k], RO[k])
                if plan[k][4]:
                    RO[k] += RO[k - 1]
            RD = np.empty_like(RO[-1])
            self.loss.hessian_product(be, A[-1], RO[-1], RD)
            self._weigh_rows(RD, r0, r1)
            D = self._output_grad(A[-1], r0, r1)
            part = np.zeros((m, self.n))
            self._rbackward(params, zero_dirs, A, Y, RS, RO, D, RD, part, lowest=l)
            out += self._chunk_share(r0, r1) * part
        return out[:, plan[l][0]:]


# --------------------------------------------------------------------------- Network methods

def for_data(net, X, y):
    """A :class:`Curvature` of ``net.loss`` on validated ``(X, y)``."""
    X = net._check_X(X)
    return Curvature(net, X, net._check_y(y, X.shape[0]))


def _point(net):
    return net.params.astype(np.float64)


def hvp(net, X, y, v):
    """``net.hvp``: exact Hessian-vector product of ``net.loss`` (float64)."""
    c = for_data(net, X, y)
    return c.hvp(_point(net), v)


def gnvp(net, X, y, v):
    """``net.gnvp``: generalised Gauss–Newton product (float64)."""
    c = for_data(net, X, y)
    return c.gnvp(_point(net), v)


def hessian(net, X, y):
    """``net.hessian``: the exact ``(n, n)`` Hessian of ``net.loss`` (float64)."""
    return for_data(net, X, y).hessian(_point(net))


def jacobian(net, X):
    """``net.jacobian``: ``(N K, n)`` Jacobian of the outputs, rows sample-major."""
    X = net._check_X(X)
    dummy = np.zeros((X.shape[0], net.n_out))
    return Curvature(net, X, dummy).jacobian(_point(net))
