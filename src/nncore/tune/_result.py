"""The table of a finished sweep and its best network."""

from __future__ import annotations

import csv
import math

from ._trial import build

__all__ = ["SearchResult"]


class SearchResult:
    """The table of a sweep and its best network.

    Attributes
    ----------
    records : list of dict
        One per trial, ordered by trial id, with keys ``trial``, ``params``
        (the configuration), ``metric`` (the value searched on), ``val_loss``
        (validation data loss, without the regularisation penalty, so
        configurations with different ``l1``/``l2`` compare fairly),
        ``val_accuracy`` (NaN for regression), ``loss`` (last training-epoch
        loss), ``epochs`` (run), ``time`` (wall seconds), ``cpu_time`` (CPU
        seconds of the worker process; well below ``time`` when the cores are
        oversubscribed), ``status``
        (``"ok"``/``"failed"``), ``error``, ``seed``; with successive halving also
        ``rung`` and ``epochs_total`` (epochs over all the trial's rungs).
    histories : dict
        Trial id -> the ``History.history`` dict of its last run.
    metric, mode : str
        What was optimised and in which direction (``"min"``/``"max"``).
    interrupted : bool
        True when the sweep was stopped by ``KeyboardInterrupt``; the records
        then hold the trials that had finished.
    """

    def __init__(self, records, histories, metric, mode, best, interrupted=False,
                 final_rung=None):
        self.records = records
        self.final_rung = final_rung
        self.histories = histories
        self.metric = metric
        self.mode = mode
        self.interrupted = interrupted
        self._best = best  # (trial id, config, params, n_in, n_out, loss, seed) or None
        self._best_network = None

    # -- best
    def _ok(self):
        # With successive halving only the last rung reached ran the full budget.
        return [r for r in self.records if r["status"] == "ok" and math.isfinite(r["metric"])
                and (self.final_rung is None or r.get("rung") == self.final_rung)]

    @property
    def best_record(self):
        """The record of the best successful trial (ties go to the lower trial id).

        With successive halving, the best of the last rung reached.
        """
        ok = self._ok()
        if not ok:
            errors = "; ".join(f"trial {r['trial']}: {r['error']}" for r in self.records[:3])
            raise ValueError(f"no trial of the sweep succeeded ({errors})")
        sign = 1.0 if self.mode == "min" else -1.0
        return min(ok, key=lambda r: (sign * r["metric"], r["trial"]))

    @property
    def best_params(self):
        """Configuration (dict) of the best trial."""
        return dict(self.best_record["params"])

    @property
    def best_score(self):
        """The metric of the best trial."""
        return self.best_record["metric"]

    @property
    def best_network(self):
        """The best trained network, rebuilt from its configuration and parameters."""
        if self._best_network is None:
            if self._best is None:
                self.best_record  # raises the clear "no trial succeeded" error
                raise ValueError("the best network's parameters were not returned")
            _, cfg, params, n_in, n_out, loss, seed = self._best
            net = build(cfg, n_in, n_out, loss=loss, seed=seed)
            net.params[:] = params
            self._best_network = net
        return self._best_network

    @property
    def total_epochs(self):
        """Epochs trained over the whole sweep (all rungs of successive halving)."""
        return int(sum(r.get("epochs_total", r["epochs"]) for r in self.records))

    # -- tables
    def _rows(self):
        keys = []
        for r in self.records:
            for k in r["params"]:
                if k not in keys:
                    keys.append(k)
        rows = []
        for r in self.records:
            row = {"trial": r["trial"]}
            for k in keys:
                v = r["params"].get(k)
                row["param_" + k] = v
            for k, v in r.items():
                if k not in ("trial", "params"):
                    row[k] = v
            rows.append(row)
        return rows

    def to_dataframe(self):
        """The records as a ``pandas.DataFrame``, one column per hyper-parameter (``param_*``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("SearchResult.to_dataframe() needs pandas (pip install pandas); "
                              "the same table is in SearchResult.records") from exc
        return pd.DataFrame(self._rows())

    def to_csv(self, path):
        """Write the table as CSV (no pandas needed).

        Parameters
        ----------
        path : str or path-like
            Destination file (overwritten).
        """
        rows = self._rows()
        fields = []
        for row in rows:
            for k in row:
                if k not in fields:
                    fields.append(k)
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for row in rows:
                w.writerow({k: (repr(v) if isinstance(v, float) else
                                "" if v is None else v) for k, v in row.items()})

    def __repr__(self):
        n_ok = len(self._ok())
        s = (f"SearchResult({len(self.records)} trials, {n_ok} ok, metric={self.metric!r}, "
             f"mode={self.mode!r}")
        if n_ok:
            s += f", best_score={self.best_score:.6g}, best_params={self.best_params!r}"
        if self.interrupted:
            s += ", interrupted"
        return s + ")"

