"""runtime.metrics: msprobe's accuracy metrics and pass thresholds (Ascend/msprobe's
alg_*.py and cmp_process.py, re-derived by hand here), as `run --compare` and `verify` print them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onnx_npuq.runtime.metrics import NAMES, describe, msprobe_metrics, precision_errors
from onnx_npuq.runtime.ort import compare


def test_hand_computed_values():
    my, gt = np.array([1, 2, 3, 4], np.float32), np.array([1, 2, 3, 5], np.float32)
    m = msprobe_metrics(my, gt)
    assert list(m) == list(NAMES)
    assert m["MaxAbsoluteError"] == 1.0 and m["MeanAbsoluteError"] == 0.25
    assert m["RootMeanSquareError"] == 0.5
    assert m["MaxRelativeError"] == pytest.approx(0.2, abs=1e-7)  # |4/5 - 1|
    assert m["MeanRelativeError"] == pytest.approx(0.05, abs=1e-7)
    assert m["AccumulatedRelativeError"] == pytest.approx(0.2, abs=1e-7)
    assert m["RelativeEuclideanDistance"] == pytest.approx(math.sqrt(1 / 39), rel=1e-6)
    assert m["CosineSimilarity"] == pytest.approx(34 / math.sqrt(30 * 39), rel=1e-6)
    # KL over min-max normalized pdfs: my -> (0, 1/3, 2/3, 1), truth -> (0, 1/4, 1/2, 1); 0 -> eps
    eps = np.finfo(np.float32).eps
    p = np.array([eps, 1 / 3, 2 / 3, 1]) / (2 + eps)
    q = np.array([eps, 1 / 4, 1 / 2, 1]) / (1.75 + eps)
    assert m["KullbackLeiblerDivergence"] == pytest.approx(float((p * np.log(p / q)).sum()), rel=1e-5)
    assert m["StandardDeviation"] == pytest.approx([2.5, math.sqrt(1.25), 2.75, math.sqrt(2.1875)])
    # RED = 0.16 > 0.05, KL > 0.005; cosine 0.9959 passes; RMSE and MRE pass
    assert precision_errors(m) == ["RelativeEuclideanDistance", "KullbackLeiblerDivergence"]
    assert "FAIL msprobe thresholds: RelativeEuclideanDistance > 0.05, KullbackLeiblerDivergence > 0.005" in \
        describe(m, precision_errors(m))


def test_zeros_in_the_truth_are_left_out_of_relative_errors():
    m = msprobe_metrics(np.array([5.0, 2.0]), np.array([0.0, 1.0]))
    assert m["MaxRelativeError"] == 1.0 and m["MeanRelativeError"] == 0.5 and m["AccumulatedRelativeError"] == 1.0


def test_all_zero_and_scalar_cases():
    z = np.zeros(8, np.float32)
    assert msprobe_metrics(z, z)["CosineSimilarity"] == 1.0
    m = msprobe_metrics(z, np.ones(8))  # my output all zero: msprobe gives NaN and does not judge the row
    assert math.isnan(m["CosineSimilarity"]) and precision_errors(m) == []
    assert "not judged" in describe(m, [])
    assert msprobe_metrics(np.float32(3.0), np.float32(2.0))["CosineSimilarity"] == 1.0  # scalar
    assert all(math.isnan(v) for v in msprobe_metrics(np.zeros(0), np.zeros(0)).values())
    with pytest.raises(ValueError, match="cannot compare"):
        msprobe_metrics(np.zeros(3), np.zeros(4))


def test_thresholds_are_judged_on_six_decimals_like_msprobe():
    ok = {"CosineSimilarity": 0.9899996, "RelativeEuclideanDistance": 0.0500004, "KullbackLeiblerDivergence": 0.0050004,
          "RootMeanSquareError": 1.0000004, "MeanRelativeError": 1.0}
    assert precision_errors(ok) == []  # each rounds onto its threshold, which passes
    bad = {k: v for k, v in ok.items()}
    bad.update(CosineSimilarity=0.989999, MeanRelativeError=1.000001)
    assert precision_errors(bad) == ["CosineSimilarity", "MeanRelativeError"]


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(-1e3, 1e3, width=32)))
def test_identical_outputs_pass(x):
    m = msprobe_metrics(x, x)
    assert m["MaxAbsoluteError"] == m["MeanAbsoluteError"] == m["RootMeanSquareError"] == 0.0
    assert m["MaxRelativeError"] == m["RelativeEuclideanDistance"] == m["KullbackLeiblerDivergence"] == 0.0
    assert precision_errors(m) == []
    assert math.isnan(m["CosineSimilarity"]) or m["CosineSimilarity"] == pytest.approx(1.0, abs=1e-5)


def test_compare_carries_them():
    want = torch.linspace(-1, 1, 100)
    got = want + 0.5
    r = compare("y", want, got)
    assert r.metrics == msprobe_metrics(got.numpy(), want.numpy())  # got is msprobe's "my output"
    assert r.precision_errors == precision_errors(r.metrics) and "RelativeEuclideanDistance" in r.precision_errors
    assert r.describe().startswith("y: (100,) 100 mismatches") and "CosineSimilarity 0." in r.describe()
    exact = compare("y", want.bfloat16(), want.bfloat16())
    assert exact.exact and exact.precision_errors == [] and exact.metrics["CosineSimilarity"] == pytest.approx(1.0)
