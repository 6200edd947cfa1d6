"""Model files as the command line uses them: scaling, target encoding, scores."""

from __future__ import annotations

import os

import numpy as np

from .._checks import check_fits_dtype
from ..io import load
from ._common import META_KEY, CLIError, _regression_scores


def _meta(net, path):
    meta = getattr(net, "metadata", None) or {}
    if meta.get(META_KEY):
        return meta
    # A network saved from Python: no scaling, task from its loss.
    task = "classification" if net.is_classifier else "regression"
    return {META_KEY: 0, "task": task, "feature_names": None, "target": None,
            "mean": None, "std": None, "classes": None, "y_mean": None, "y_std": None,
            "loss": net.loss_name}


def _scale_X(meta, X, net):
    if X.shape[1] != net.n_in:
        raise CLIError(f"the data has {X.shape[1]} features but the model expects {net.n_in}")
    if meta.get("mean") is not None:
        X = (X - np.asarray(meta["mean"])) / np.asarray(meta["std"])
    check_fits_dtype(X, net.dtype, "X (standardised)" if meta.get("mean") is not None else "X")
    return np.ascontiguousarray(X, dtype=net.dtype)


def _encode_targets(meta, y, net):
    """Raw labels/targets -> what the network's loss expects."""
    if meta["task"] == "classification":
        classes = meta.get("classes")
        if classes is None:
            raw = np.asarray(y)
            if raw.size == 0:
                raise CLIError("the data has no rows")
            try:
                codes = raw.astype(np.int64)
                exact = np.array_equal(codes, raw.astype(float))
            except (TypeError, ValueError):
                exact = False
            if not exact:
                raise CLIError("labels must be whole numbers for this model")
            k = net._loss.n_classes(net.n_out)
            if codes.min() < 0 or codes.max() >= k:
                raise CLIError(f"labels must be 0..{k - 1} for this model")
        else:
            lookup = {str(c): i for i, c in enumerate(classes)}
            keys = [str(v.item() if hasattr(v, "item") else v) for v in np.asarray(y)]
            unknown = sorted({k for k in keys if k not in lookup})
            if unknown:
                raise CLIError(f"labels {unknown[:5]} were not seen in training "
                               f"(classes: {classes})")
            codes = np.array([lookup[k] for k in keys], dtype=np.int64)
        return net._loss.encode_labels(codes, net.n_out, net.dtype)
    Y = np.asarray(y, dtype=float)
    Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
    if Y.shape[1] != net.n_out:
        raise CLIError(f"the data has {Y.shape[1]} targets but the model predicts {net.n_out}")
    if meta.get("y_mean") is not None:
        Y = (Y - np.asarray(meta["y_mean"])) / np.asarray(meta["y_std"])
    check_fits_dtype(Y, net.dtype, "y")
    return np.ascontiguousarray(Y, dtype=net.dtype)


def _decode_predictions(meta, net, Xs):
    """Network outputs -> (labels or targets in original units, probabilities or None)."""
    if meta["task"] == "classification":
        proba = np.asarray(net.predict_proba(Xs), dtype=float)
        if proba.shape[1] == 1:
            proba = np.column_stack([1.0 - proba[:, 0], proba[:, 0]])
        codes = proba.argmax(axis=1)
        classes = meta.get("classes")
        labels = np.asarray(classes, dtype=object)[codes] if classes is not None else codes
        return labels, proba
    out = np.asarray(net.forward(Xs), dtype=float)
    if meta.get("y_mean") is not None:
        out = out * np.asarray(meta["y_std"]) + np.asarray(meta["y_mean"])
    return out, None


def _scores(meta, net, Xs, y):
    """Rows of the metrics table for one split."""
    T = _encode_targets(meta, y, net)
    scores = {"loss": float(net.loss(Xs, T))}
    pred, _ = _decode_predictions(meta, net, Xs)
    if meta["task"] == "classification":
        truth = np.asarray([str(v.item() if hasattr(v, "item") else v) for v in np.asarray(y)])
        scores["accuracy"] = float(np.mean(np.asarray([str(p) for p in pred]) == truth))
    else:
        Y = np.asarray(y, dtype=float)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        rmse, r2 = _regression_scores(pred, Y)
        scores["rmse"] = rmse
        scores["r2"] = r2
    return scores



def _load_model(path):
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such model file")
    try:
        net = load(path)
    except ValueError as exc:
        msg = str(exc)
        if path not in msg:  # e.g. numpy's own message for a file that is no archive
            msg = f"{path}: not a valid nncore model file ({msg.split('.')[0]})"
        raise CLIError(msg) from None
    return net, _meta(net, path)

