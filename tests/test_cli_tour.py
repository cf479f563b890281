"""The README's tour on a user's own CNN (a factory file, random init, symbolic image size:
export --dynamic):
export with named inputs, verify per layer, rewrite with verification, convert. Each step
failed on such a model before: the layer map pointed at shape arithmetic, verification fed
3x3 images to 3x3 convs, --input names were dropped, and verify rebuilt different weights."""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from onnx_npuq.errors import ModelError
from onnx_npuq.passes import random_inputs

from test_cli import invoke, one_line_error

CNN = '''
import torch
from torch import nn


def build():  # random init, no seed: the CLI builds it under a fixed seed
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten())
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("tour")
    (d / "my_models.py").write_text(CNN)
    spec = f"{d / 'my_models.py'}:build"
    invoke("export", spec, "-w", "mxfp4", "-a", "hif8", "--input", "x:1,3,12,12", "--dynamic", "-o", d / "m.onnx")
    return d, spec


def test_export_names_inputs_and_records_their_shapes(exported):
    d, _ = exported
    m = onnx.load(d / "m.onnx")
    assert [v.name for v in m.graph.input] == ["x"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["onnx_npuq.input_shapes"]) == {"x": [1, 3, 12, 12]}
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(dims[i], str) for i in (0, 2, 3))  # --dynamic: any batch, image size
    x = random_inputs(m)[0]
    assert x.shape == (1, 3, 12, 12)


def test_verify_layers_are_the_convs_outputs(exported):
    d, spec = exported
    res = invoke("verify", spec, d / "m.onnx", "-w", "mxfp4", "-a", "hif8", "--input", "x:1,3,12,12",
                 "--layers", "--json")
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["layer:0"]["shape"] == [1, 8, 10, 10] and rows["layer:2"]["shape"] == [1, 8, 8, 8]
    for r in rows.values():  # the same weights in torch and the file: float rounding only
        assert r["max_abs"] < 1e-5 and r["cosine"] > 0.999999, r


def test_rewrite_verifies_at_the_exported_shape_and_convert_takes_the_names(exported):
    d, _ = exported
    res = invoke("rewrite", d / "m.onnx", "-o", d / "m.q.onnx", "-p", "compress,fuse-npu", "--json")
    assert all(p["mismatches"] == 0 for p in json.loads(res.output)["passes"])
    invoke("convert", d / "m.q.onnx", "--soc", "Ascend910B1", "-o", d / "out" / "m", "--input-shape", "x:1,3,12,12")
    assert (d / "out" / "m.atc.onnx").exists()


def test_rewrite_input_shape_option(exported):
    d, _ = exported
    invoke("rewrite", d / "m.onnx", "-o", d / "m16.onnx", "-p", "compress", "--input-shape", "x:2,3,16,16")
    assert "no input 'y'" in one_line_error(invoke("rewrite", d / "m.onnx", "-o", d / "e.onnx", "-p", "compress",
                                                   "--input-shape", "y:1,3,12,12", ok=False))
    assert "rank 4" in one_line_error(invoke("rewrite", d / "m.onnx", "-o", d / "e.onnx", "-p", "compress",
                                             "--input-shape", "x:1,3,12", ok=False))
    assert "need sizes" in one_line_error(invoke("rewrite", d / "m.onnx", "-o", d / "e.onnx", "-p", "compress",
                                                 "--input-shape", "x:1,3,-1,12", ok=False))
    assert not (d / "e.onnx").exists()


def test_random_inputs_ignore_a_malformed_record():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])
    m = onnx.helper.make_model(onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    for bad in ("{", "[1]", '{"x": [true, 4]}', '{"x": [-1, 4]}', '{"x": "1,4"}'):
        del m.metadata_props[:]
        m.metadata_props.add(key="onnx_npuq.input_shapes", value=bad)
        assert random_inputs(m)[0].shape == (3, 4)
    assert random_inputs(m, shapes={"x": [5, 4]})[0].shape == (5, 4)
    with pytest.raises(ModelError):
        random_inputs(m, shapes={"x": [5]})
    with pytest.raises(ModelError, match=r"has shape \['\?', 4\], the given shape \[5, 6\] differs"):
        random_inputs(m, shapes={"x": [5, 6]})  # not silently 5x4
    assert torch.equal(random_inputs(m, seed=1)[0], random_inputs(m, seed=1)[0])
