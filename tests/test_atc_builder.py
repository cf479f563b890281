"""onnx_npuq.atc command builder: the atc argument list, checked against ATC's documented rules
(shared/spec/ascend.md; hicann/ge atc_flags.cc and CLI_options docs). ATC itself is not run."""
from __future__ import annotations

import os
import warnings

import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper

import onnx_npuq.ops.npu_ops  # noqa: F401  (registers the npu schemas)
from onnx_npuq import atc as C
from onnx_npuq.exporter import save, to_onnx
from onnx_npuq.nn import quantize_model
from onnx_npuq.passes.pipeline import LAYOUT_KEY, is_atc_layout

SOC = "Ascend910B1"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def exported() -> onnx.ModelProto:
    """A quantized Linear-ReLU-Linear, exported: npuq nodes, batch dimension left open."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    quantize_model(m, weights="mxfp4", activations="mxfp4")
    return _quiet(to_onnx, m, (torch.randn(2, 32),), dynamic=True)


def _relus(inputs: dict, opset: int = 18) -> onnx.ModelProto:
    """One Relu per input, dims as given (strings are symbolic)."""
    nodes = [helper.make_node("Relu", [n], [f"{n}_out"], name=f"relu_{n}") for n in inputs]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, T.FLOAT, d) for n, d in inputs.items()],
                          [helper.make_tensor_value_info(f"{n}_out", T.FLOAT, None) for n in inputs])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _atc(model, layout="default"):
    return C.atc_model(model, layout)[0]


def _flags(argv) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:])


# ---------------------------------------------------------------- soc_version


def test_every_known_soc_and_a_clear_error_otherwise(tmp_path):
    m = _atc(_relus({"x": [2, 4]}))
    for soc in C.SOC_VERSIONS:
        assert _flags(C.build_command(m, soc, tmp_path / "m"))["soc_version"] == soc
    assert set(C.SOC_VERSIONS) == {f"Ascend910B{i}" for i in range(1, 5)} | {"Ascend310P1", "Ascend310P3"} | {
        f"Ascend310B{i}" for i in range(1, 5)} | {"Ascend910A"}
    with pytest.raises(C.SocVersionError) as info:
        C.build_command(m, "Ascend910", tmp_path / "m")
    msg = str(info.value)
    assert "Ascend910B1" in msg and "Ascend310P3" in msg and "Ascend910A" in msg and "\n" not in msg
    with pytest.raises(C.SocVersionError, match="did you mean Ascend310P3"):
        C.soc_info("ascend310p3")


# ---------------------------------------------------------------- the command


def test_command_for_an_exported_model(exported, tmp_path):
    cmd = C.plan_command(exported, SOC, tmp_path / "out" / "m", layout="default",
                         input_shapes={"input": [-1, 32]}, dynamic_batch=[1, 2, 4])
    assert cmd.argv[0] == "atc"
    f = _flags(cmd.argv)
    assert f == {"model": str(tmp_path / "out" / "m.atc.onnx"), "framework": "5", "output": str(tmp_path / "out" / "m"),
                 "soc_version": SOC, "input_format": "ND", "input_shape": "input:-1,32",
                 "dynamic_batch_size": "1,2,4", "precision_mode_v2": "fp16",
                 "keep_dtype": str(tmp_path / "out" / "m.keep_dtype.cfg"), "log": "error"}
    assert cmd.om_path == tmp_path / "out" / "m.om" and cmd.write_model
    assert is_atc_layout(cmd.model)
    assert any("laid out by the atc pass" in n for n in cmd.notes)
    # build_command is the same list
    assert C.build_command(exported, SOC, tmp_path / "out" / "m", layout="default", input_shapes="input:-1,32",
                           dynamic_batch="1,2,4") == cmd.argv
    assert "'--input_shape=input:-1,32'" not in cmd.shell() and cmd.shell().startswith("atc --model=")
    assert not (tmp_path / "out").exists()  # planning writes nothing

    written = cmd.write()
    assert written == [tmp_path / "out" / "m.atc.onnx", tmp_path / "out" / "m.keep_dtype.cfg"]
    assert sorted(os.listdir(tmp_path / "out")) == ["m.atc.onnx", "m.keep_dtype.cfg"]  # no temporaries left
    assert is_atc_layout(onnx.load(tmp_path / "out" / "m.atc.onnx"))
    lines = (tmp_path / "out" / "m.keep_dtype.cfg").read_text().splitlines()
    names = {n.name for n in C.custom_nodes(cmd.model)}
    assert lines[:2] == ["OpType::NpuqDequantize", "OpType::NpuqQuantDequant"]
    assert set(lines[2:]) == names and len(names) == 4


def test_a_model_already_laid_out_on_disk_is_used_as_it_is(exported, tmp_path):
    path = tmp_path / "m.atc.onnx"
    save(_atc(exported, "domain"), path)
    cmd = C.plan_command(path, SOC, tmp_path / "x", input_shapes="input:8,32")
    assert not cmd.write_model and _flags(cmd.argv)["model"] == str(path)
    assert _flags(cmd.argv)["input_shape"] == "input:8,32"
    # asking for the other layout lays it out again, into <stem>.atc.onnx
    cmd = C.plan_command(path, SOC, tmp_path / "x", input_shapes="input:8,32", layout="default")
    assert cmd.write_model and _flags(cmd.argv)["model"] == str(tmp_path / "x.atc.onnx")
    assert {p.key: p.value for p in cmd.model.metadata_props}[LAYOUT_KEY] == "default"
    with pytest.raises(C.AtcOptionError, match="is the input model"):
        C.plan_command(path, SOC, tmp_path / "m", input_shapes="input:8,32", layout="default")


def test_a_model_not_laid_out_needs_a_layout(exported, tmp_path):
    with pytest.raises(C.LayoutError, match="not in an ATC layout.*layout='default' or 'domain'"):
        C.build_command(exported, SOC, tmp_path / "m", input_shapes="input:8,32")
    assert C.build_command(exported, SOC, tmp_path / "m", input_shapes="input:8,32", layout="domain")


def test_npu_ops_are_kept_by_node_name(tmp_path):
    """CANN's own npu ops: their Ascend IR type is not their ONNX name, so only the node name."""
    n = helper.make_node("NPUDynamicQuant", ["x"], ["y", "s"], domain="npu", name="dq", dst_type=2)
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", T.FLOAT16, [4, 32])],
                          [helper.make_tensor_value_info("y", T.INT8, [4, 32]),
                           helper.make_tensor_value_info("s", T.FLOAT, [4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("npu", 1)],
                          ir_version=10)
    for layout in ("default", "domain"):
        cmd = C.plan_command(m, SOC, tmp_path / "m", layout=layout)
        assert cmd.keep_dtype_lines == ["dq"]


# ---------------------------------------------------------------- input shapes


def test_input_shape_names_ranks_and_fixed_dims(tmp_path):
    m = _atc(_relus({"x": ["n", 16], "y": [2, 3]}))
    stem = tmp_path / "m"
    with pytest.raises(C.InputShapeError, match=r"no input 'z' \(inputs: x, y\)"):
        C.build_command(m, SOC, stem, input_shapes="x:1,16;z:1")
    with pytest.raises(C.InputShapeError, match=r"x: rank 3 but the model input has rank 2 \[n, 16\]"):
        C.build_command(m, SOC, stem, input_shapes="x:1,16,1")
    with pytest.raises(C.InputShapeError, match=r"x\[1\]: 8, but the model fixes this dimension at 16"):
        C.build_command(m, SOC, stem, input_shapes="x:1,8")
    with pytest.raises(C.InputShapeError, match=r"input x \[n, 16\] has dimensions the model leaves open"):
        C.build_command(m, SOC, stem)
    with pytest.raises(C.InputShapeError, match="given twice"):
        C.build_command(m, SOC, stem, input_shapes="x:1,16;x:2,16")
    for bad in ("x:0,16", "x:a,16", "x:-2,16", "x:5~2,16", "x16", ":1"):
        with pytest.raises(C.InputShapeError):
            C.build_command(m, SOC, stem, input_shapes=bad)
    assert _flags(C.build_command(m, SOC, stem, input_shapes="x:4,16"))["input_shape"] == "x:4,16"
    assert _flags(C.build_command(m, SOC, stem, input_shapes={"x": [4, 16], "y": [2, 3]}))["input_shape"] == \
        "x:4,16;y:2,3"


def test_scalars_and_gears_need_them_listed(tmp_path):
    m = _atc(_relus({"x": ["n", 16], "s": []}))
    assert C.parse_input_shapes("x:-1,16;s:") == {"x": [-1, 16], "s": []}
    with pytest.raises(C.DynamicShapeError, match="scalar inputs.*'s:'"):
        C.build_command(m, SOC, tmp_path / "m", input_shapes="x:-1,16", dynamic_batch="1,2")
    f = _flags(C.build_command(m, SOC, tmp_path / "m", input_shapes="x:-1,16;s:", dynamic_batch="1,2"))
    assert f["input_shape"] == "x:-1,16;s:"


def test_gears(tmp_path):
    m = _atc(_relus({"x": ["n", "t"], "y": ["n", 4]}))
    stem = tmp_path / "m"
    f = _flags(C.build_command(m, SOC, stem, input_shapes="x:-1,8;y:-1,4", dynamic_batch=[1, 2, 8]))
    assert f["dynamic_batch_size"] == "1,2,8" and f["input_shape"] == "x:-1,8;y:-1,4"
    f = _flags(C.build_command(m, SOC, stem, input_shapes="x:1,-1;y:1,4", dynamic_dims="16;32;64"))
    assert f["dynamic_dims"] == "16;32;64"
    f = _flags(C.build_command(m, SOC, stem, input_shapes="x:-1,-1;y:-1,4", dynamic_dims=[[1, 8, 1], [2, 16, 2]]))
    assert f["dynamic_dims"] == "1,8,1;2,16,2"
    cases = [
        ({"input_shapes": "x:1,-1;y:1,4", "dynamic_batch": "1,2"}, "first dimension only"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": "4"}, r"1 gear\(s\); ATC takes 2..100"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": list(range(1, 102))}, r"101 gear\(s\)"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": "1,2,1"}, "gear 1 is repeated"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": "0,2"}, "below 1"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": "1,b"}, "must be integers"),
        ({"input_shapes": "x:-1,8;y:-1,4", "dynamic_batch": "1,2", "dynamic_dims": "1;2"}, "at most one of"),
        ({"input_shapes": "x:1,-1;y:1,4", "dynamic_dims": "8;16", "input_format": "NCHW"}, "needs input_format ND"),
        ({"input_shapes": "x:-1,-1;y:-1,4", "dynamic_dims": "8;16"}, "need 3"),
        ({"input_shapes": "x:1,8;y:1,4", "dynamic_dims": "8;16"}, "no -1 dimension"),
        ({"input_shapes": "x:1~4,-1;y:1,4", "dynamic_dims": "8;16"}, "ranges .* cannot go with gears"),
    ]
    for kwargs, match in cases:
        with pytest.raises(C.DynamicShapeError, match=match):
            C.build_command(m, SOC, stem, **kwargs)


def test_image_size_gears_are_h_and_w_of_nchw(tmp_path):
    m = _atc(_relus({"img": [1, 3, "h", "w"]}))
    f = _flags(C.build_command(m, SOC, tmp_path / "m", input_shapes="img:1,3,-1,-1", input_format="NCHW",
                               dynamic_image_size="224,224;448,448"))
    assert f["dynamic_image_size"] == "224,224;448,448" and f["input_format"] == "NCHW"
    with pytest.raises(C.DynamicShapeError, match="input_format is ND"):
        C.build_command(m, SOC, tmp_path / "m", input_shapes="img:1,3,-1,-1", dynamic_image_size="2,2;4,4")
    with pytest.raises(C.DynamicShapeError, match="has 1 value"):
        C.build_command(m, SOC, tmp_path / "m", input_shapes="img:1,3,-1,-1", input_format="NCHW",
                        dynamic_image_size="224;448")


def test_shape_ranges_without_gears_are_dynamic_shape(tmp_path):
    """-1 / lo~hi without gears: a shape range (the --input_shape docs), not on Atlas 200I/500 A2."""
    m = _atc(_relus({"x": ["n", 16]}))
    for spec in ("x:-1,16", "x:1~8,16"):
        assert _flags(C.build_command(m, SOC, tmp_path / "m", input_shapes=spec))["input_shape"] == spec
        with pytest.raises(C.DynamicShapeError, match="Ascend310B1 .* does not support"):
            C.build_command(m, "Ascend310B1", tmp_path / "m", input_shapes=spec)


# ---------------------------------------------------------------- precision and keep_dtype


def test_precision_flags(exported, tmp_path):
    kw = {"layout": "default", "input_shapes": "input:2,32"}
    stem = tmp_path / "m"
    with pytest.raises(C.PrecisionError, match="cannot both be set"):
        C.build_command(exported, SOC, stem, precision_mode="force_fp16", precision_mode_v2="fp16", **kw)
    with pytest.raises(C.PrecisionError, match="'fp8' is not one of force_fp16"):
        C.build_command(exported, SOC, stem, precision_mode="fp8", **kw)
    with pytest.raises(C.PrecisionError, match="precision_mode_v2 'force_fp16' is not one of fp16, origin"):
        C.build_command(exported, SOC, stem, precision_mode_v2="force_fp16", **kw)
    with pytest.raises(C.PrecisionError, match="bfloat16, which Ascend310P3"):
        C.build_command(exported, "Ascend310P3", stem, precision_mode_v2="mixed_bfloat16", **kw)
    with pytest.raises(C.PrecisionError, match="hifloat8, which only Ascend 950"):
        C.build_command(exported, SOC, stem, precision_mode_v2="mixed_hif8", **kw)
    f = _flags(C.build_command(exported, SOC, stem, precision_mode="allow_mix_precision", **kw))
    assert f["precision_mode"] == "allow_mix_precision" and "keep_dtype" in f and "precision_mode_v2" not in f
    f = _flags(C.build_command(exported, SOC, stem, precision_mode_v2="mixed_bfloat16", **kw))
    assert f["precision_mode_v2"] == "mixed_bfloat16"


def test_keep_fp32_strategies(exported, tmp_path):
    kw = {"layout": "default", "input_shapes": "input:2,32"}
    stem = tmp_path / "m"
    cmd = C.plan_command(exported, SOC, stem, keep_fp32="origin", **kw)
    f = _flags(cmd.argv)
    assert f["precision_mode_v2"] == "origin" and "keep_dtype" not in f and cmd.keep_dtype_lines == []
    # origin or must_keep_origin_dtype: ATC ignores --keep_dtype, so none is generated
    for extra in ({"precision_mode_v2": "origin"}, {"precision_mode": "must_keep_origin_dtype"}):
        f = _flags(C.build_command(exported, SOC, stem, **extra, **kw))
        assert "keep_dtype" not in f
    with pytest.raises(C.PrecisionError, match="cannot go with precision_mode=force_fp16"):
        C.build_command(exported, SOC, stem, keep_fp32="origin", precision_mode="force_fp16", **kw)
    with pytest.raises(C.PrecisionError, match="not fp16"):
        C.build_command(exported, SOC, stem, keep_fp32="origin", precision_mode_v2="fp16", **kw)
    with pytest.raises(C.PrecisionError, match="keep_fp32 must be one of"):
        C.build_command(exported, SOC, stem, keep_fp32="yes", **kw)
    f = _flags(C.build_command(exported, SOC, stem, keep_fp32="none", **kw))
    assert "keep_dtype" not in f and "precision_mode_v2" not in f
    # --keep_dtype goes with a precision flag: ATC's default fp16 is written out
    f = _flags(C.build_command(exported, SOC, stem, **kw))
    assert f["precision_mode_v2"] == "fp16" and "keep_dtype" in f
    # the caller's own file is used as it is
    cmd = C.plan_command(exported, SOC, stem, keep_dtype=tmp_path / "mine.cfg", **kw)
    assert _flags(cmd.argv)["keep_dtype"] == str(tmp_path / "mine.cfg") and cmd.keep_dtype_lines == []
    with pytest.raises(C.PrecisionError, match="no effect"):
        C.build_command(exported, SOC, stem, keep_dtype="mine.cfg", precision_mode_v2="origin", **kw)
    # a model without custom nodes needs no file
    f = _flags(C.build_command(_atc(_relus({"x": [2, 4]})), SOC, stem))
    assert "keep_dtype" not in f


# ---------------------------------------------------------------- other options


def test_other_options(tmp_path):
    m = _atc(_relus({"x": [2, 4]}))
    stem = tmp_path / "m"
    with pytest.raises(C.AtcOptionError, match="log 'verbose' is not one of debug, info, warning, error, null"):
        C.build_command(m, SOC, stem, log="verbose")
    with pytest.raises(C.AtcOptionError, match="input_format 'NHWC' is not one of NCHW, NCDHW, ND"):
        C.build_command(m, SOC, stem, input_format="NHWC")
    with pytest.raises(C.AtcOptionError, match="without .om"):
        C.build_command(m, SOC, tmp_path / "m.om")
    with pytest.raises(C.AtcOptionError, match="--soc_version is set by build_command"):
        C.build_command(m, SOC, stem, extra=["--soc_version=Ascend910A"])
    with pytest.raises(C.AtcOptionError, match="not of the form --flag=value"):
        C.build_command(m, SOC, stem, extra=["-x"])
    argv = C.build_command(m, SOC, stem, log="info", extra=["--op_select_implmode=high_precision"])
    assert argv[-2:] == ["--log=info", "--op_select_implmode=high_precision"]
    assert C.build_command(m, SOC, stem, extra={"op_debug_level": 0})[-1] == "--op_debug_level=0"


def test_keep_dtype_path_characters(exported, tmp_path):
    with pytest.raises(C.AtcOptionError, match="letters, digits"):
        C.build_command(exported, SOC, tmp_path / "my model" / "m", layout="default", input_shapes="input:2,32")


def test_errors_are_one_line_value_errors(tmp_path):
    m = _atc(_relus({"x": ["n", 4]}))
    for call in (lambda: C.build_command(m, "X", tmp_path / "m"),
                 lambda: C.build_command(m, SOC, tmp_path / "m"),
                 lambda: C.build_command(m, SOC, tmp_path / "m", input_shapes="x:-1,4", dynamic_batch="1"),
                 lambda: C.build_command(m, SOC, tmp_path / "m", input_shapes="x:1,4", precision_mode="x")):
        with pytest.raises(C.AtcError) as info:
            call()
        assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
