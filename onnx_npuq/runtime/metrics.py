"""Accuracy metrics as Ascend's msprobe computes and judges them, so `run --compare` and
`verify` speak the numbers Ascend users read in msprobe's result_*.csv.

Followed to the letter (Ascend/msprobe @8ff00da376, python/msprobe/):
- msaccucmp/algorithm_manager/algorithm_manager.py `compare`: both tensors flattened and cast to
  float32 (numpy float32 arithmetic from there), numpy's divide / invalid warnings off;
- msaccucmp/algorithm_manager/builtin_algorithm/alg_<Name>.py: one formula per metric, with
  ConstManager.FLOAT_EPSILON = np.finfo(float).eps (float64's) and, in the KL divergence only,
  float32's eps; StandardDeviation's (mean; std) pairs zeroed below MINIMUM_VALUE = 0.001;
- infer/offline/compare/msquickcmp/cmp_process.py `_is_row_precision_error`: an output is a
  precision error when CosineSimilarity < 0.99, RelativeEuclideanDistance > 0.05,
  KullbackLeiblerDivergence > 0.005, RootMeanSquareError > 1.0 or MeanRelativeError > 1.0,
  judged on the CSV's values (6 decimals, utils.format_value); a NaN cosine is not judged.
"my output" is the tensor under test (the NPU's / onnxruntime's), the ground truth the golden
one (onnxruntime's / torch's).
"""
from __future__ import annotations

import math

import numpy as np

FLOAT_EPSILON = np.finfo(float).eps  # ConstManager.FLOAT_EPSILON
KL_EPSILON = np.finfo(np.float32).eps  # alg_KullbackLeiblerDivergence.FLOAT_EPSILON
MINIMUM_VALUE = 0.001  # ConstManager.MINIMUM_VALUE (StandardDeviation)

# cmp_process.py: (metric, "min" or "max", threshold): the pass side is >= min / <= max
THRESHOLDS = (("CosineSimilarity", "min", 0.99), ("RelativeEuclideanDistance", "max", 0.05),
              ("KullbackLeiblerDivergence", "max", 0.005), ("RootMeanSquareError", "max", 1.0),
              ("MeanRelativeError", "max", 1.0))
# msprobe's CSV column order (ConstManager.BUILT_IN_ALGORITHM)
NAMES = ("CosineSimilarity", "MaxAbsoluteError", "AccumulatedRelativeError", "RelativeEuclideanDistance",
         "KullbackLeiblerDivergence", "StandardDeviation", "MeanAbsoluteError", "RootMeanSquareError",
         "MaxRelativeError", "MeanRelativeError")


def _cosine(x: np.ndarray, y: np.ndarray, scalar: bool) -> float:
    if scalar:
        return 1.0
    xn = np.linalg.norm(x, axis=-1, keepdims=True)
    yn = np.linalg.norm(y, axis=-1, keepdims=True)
    if xn <= FLOAT_EPSILON and yn < FLOAT_EPSILON:
        return 1.0
    if xn ** 0.5 <= FLOAT_EPSILON or yn ** 0.5 <= FLOAT_EPSILON:
        return math.nan  # "Cannot compare by Cosine Similarity. All the data is zero"
    return float(min(((x / xn) * (y / yn)).sum(), 1.0))


def _kl_normalized(d: np.ndarray) -> np.ndarray:
    span = d.max() - d.min()
    scaled = (d - d.min()) / span if span != 0 else d
    return np.maximum(scaled, KL_EPSILON)


def _kl(x: np.ndarray, y: np.ndarray) -> float:
    px, py = _kl_normalized(x), _kl_normalized(y)
    if np.all(px == 0) or np.all(py == 0):
        return math.nan
    nx, ny = px / px.sum(), py / py.sum()
    result = (nx * np.log(nx / ny)).sum()
    return 0.0 if abs(result) < FLOAT_EPSILON else float(result)


def _mean_std(d: np.ndarray) -> list[float]:
    mean, std = np.mean(d, dtype=np.float64), np.std(d, dtype=np.float64)
    return [0.0 if abs(v) < MINIMUM_VALUE else float(v) for v in (mean, std)]


def msprobe_metrics(my_output, ground_truth) -> dict:
    """msprobe's ten metrics, by name. StandardDeviation is [my mean, my std, golden mean,
    golden std] (msprobe prints it "(mean;std),(mean;std)" to 3 decimals). All NaN for empty
    tensors, which msprobe does not compare."""
    x = np.asarray(my_output).astype(np.float32).reshape(-1)
    y = np.asarray(ground_truth).astype(np.float32).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"cannot compare {x.size} values with {y.size}")
    if x.size == 0:
        return {n: math.nan for n in NAMES}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        diff = x - y
        rel = np.where(np.abs(y) > FLOAT_EPSILON, np.abs(x / y - 1), 0)
        square = (y ** 2).sum()
        red = 0.0 if square ** 0.5 <= FLOAT_EPSILON else (diff ** 2).sum() / square
        return {
            "CosineSimilarity": _cosine(x, y, np.ndim(ground_truth) == 0),
            "MaxAbsoluteError": float(np.abs(diff).max()),
            "AccumulatedRelativeError": float(rel.sum()),
            "RelativeEuclideanDistance": float(red ** 0.5),
            "KullbackLeiblerDivergence": _kl(x, y),
            "StandardDeviation": _mean_std(x) + _mean_std(y),
            "MeanAbsoluteError": float(np.abs(diff).mean()),
            "RootMeanSquareError": float(np.sqrt(np.average(diff ** 2))),
            "MaxRelativeError": float(rel.max()),
            "MeanRelativeError": float(rel.mean()),
        }


def _csv(v: float) -> float:
    """The value as msprobe's CSV holds it (utils.format_value: 6 decimals)."""
    return float(f"{v:.6f}")


def precision_errors(metrics: dict) -> list[str]:
    """The metrics past msprobe's thresholds (empty: msprobe would not flag the output)."""
    if math.isnan(metrics["CosineSimilarity"]):
        return []  # cmp_process.py does not judge a row whose cosine is NaN
    out = []
    for name, side, limit in THRESHOLDS:
        v = _csv(metrics[name])
        if (v < limit) if side == "min" else (v > limit):
            out.append(name)
    return out


def describe(metrics: dict, errors: list[str]) -> str:
    """One line: the judged metrics as msprobe prints them, and the verdict."""
    shown = " ".join(f"{name} {metrics[name]:.6f}" for name, _, _ in THRESHOLDS)
    if math.isnan(metrics["CosineSimilarity"]):
        verdict = "not judged (CosineSimilarity NaN, as msprobe)"
    elif errors:
        verdict = "FAIL msprobe thresholds: " + ", ".join(
            f"{n} {'<' if side == 'min' else '>'} {limit:g}" for n, side, limit in THRESHOLDS if n in errors)
    else:
        verdict = "pass (msprobe thresholds)"
    return f"{shown}: {verdict}"
