"""custom_ops/ (the msopgen operator project for ATC) agrees with the Python side.

Nothing in custom_ops/ can be compiled against CANN here, so these tests read its sources and
hold them to what onnx_npuq defines:

  * the ONNX plugins register exactly onnx_npuq.passes.atc.OUR_KEYS, per op, and read every
    attribute of the op (name, type, default);
  * each op_host OpDef declares the op's inputs, outputs (dtype columns) and attributes with the defaults of onnx_npuq.ops.defs; the Op JSON files say
    the same;
  * the format table of op_host is onnx_npuq.formats (order = params.h FormatId, block, bits,
    scale bytes, accepted options), and the tiling fields are the params.h struct fields;
  * with g++ (required, -Wall -Wextra -Werror), the plugins and the op_host sources (OpDefs,
    TilingFuncs, InferShape) are compiled against tests/stubs (CANN's signatures, each stub citing
    the header it follows; our own nlohmann/json.hpp, so no nlohmann-json3-dev is needed) and run
    against the Python side; the json stub is itself checked against Python's json module;
  * the tiling op_host computes (rows over the vector cores, tile rows, workspace) is the kernels'
    own plan (kernels/include/npuq/workspace.h, plan.h): no private UB arithmetic, no row refused
    for its length.
"""
from __future__ import annotations

import functools
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from onnx_npuq import formats as F
from onnx_npuq.formats import hif4 as _hif4
from onnx_npuq.formats import hif8 as _hif8
from onnx_npuq.formats import mx as _mx
from onnx_npuq.ops import defs
from onnx_npuq.ops import npu_ops
from onnx_npuq.passes import atc

ROOT = Path(__file__).resolve().parent.parent
CUSTOM = ROOT / "custom_ops"
STUBS = CUSTOM / "tests" / "stubs"
PARAMS_H = ROOT / "kernels" / "include" / "npuq" / "params.h"

# ONNX op -> (GE op type, file stem, the Python OpDef, params.h struct of its tiling or None).
# Our GE types carry the Npuq prefix: a custom op takes precedence over CANN's of the same type,
# and CANN has Quantize and Dequantize. NPUDequantSwigluQuant maps onto CANN's own
# DequantSwigluQuant (plugin only, no OpDef / kernel of ours).
OURS = {
    "QuantDequant": ("NpuqQuantDequant", "npuq_quant_dequant", defs.QUANT_DEQUANT, "QuantDequantParams"),
    "Dequantize": ("NpuqDequantize", "npuq_dequantize", defs.DEQUANTIZE, "DequantizeParams"),
    "Quantize": ("NpuqQuantize", "npuq_quantize", defs.QUANTIZE, "QuantDequantParams"),
}
CANN_MAPPED = {"NPUDequantSwigluQuant": ("DequantSwigluQuant", "npu_dequant_swiglu_quant",
                                         npu_ops.NPU_DEQUANT_SWIGLU_QUANT)}
# GE types CANN itself registers that a custom op must not take (hicann/ops-nn and the TF set).
CANN_TYPES = {"Quantize", "Dequantize", "AscendQuant", "AscendDequant", "AscendAntiQuant", "DynamicQuant",
              "DynamicQuantV2", "DequantSwigluQuant", "WeightQuantBatchMatmulV2", "QuantDequant"}

DT = {"tensor(float)": "DT_FLOAT", "tensor(float16)": "DT_FLOAT16", "tensor(bfloat16)": "DT_BF16",
      "tensor(uint8)": "DT_UINT8", "tensor(int8)": "DT_INT8", "tensor(int32)": "DT_INT32",
      "tensor(int64)": "DT_INT64"}
JSON_DT = {"float": "DT_FLOAT", "float32": "DT_FLOAT", "fp32": "DT_FLOAT", "float16": "DT_FLOAT16",
           "fp16": "DT_FLOAT16", "bfloat16": "DT_BF16", "bf16": "DT_BF16", "uint8": "DT_UINT8"}
S, I, FL = defs.OpSchema.AttrType.STRING, defs.OpSchema.AttrType.INT, defs.OpSchema.AttrType.FLOAT


# ---------------------------------------------------------------- reading C++


def _strip_comments(src: str) -> str:
    """C++ source without comments (string literals kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            i = src.find("\n", i) if src.find("\n", i) >= 0 else n
        elif src.startswith("/*", i):
            i = src.index("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _code(path: Path) -> str:
    return _strip_comments(path.read_text(encoding="utf-8"))


def _block(text: str, start: int) -> str:
    """The text inside the braces that open at or after `start`."""
    open_at = text.index("{", start)
    depth = 0
    for j in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[open_at + 1:j]
    raise AssertionError("unbalanced braces")


def _literal(text: str):
    """A C++ literal as Python: "s" -> 's', 7.0F -> 7.0, 0 -> 0, true -> True."""
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text.rstrip("fF"))


def _plugin_helpers() -> dict[str, str]:
    """The free functions of npuq_onnx_attrs.h (the attribute parsing plugins share): name -> body."""
    code = _code(CUSTOM / "framework" / "onnx_plugin" / "npuq_onnx_attrs.h")
    return {m.group(1): _block(code, m.end()) for m in re.finditer(r"^inline\s+bool\s+(\w+)\s*\(", code, re.M)}


def _plugins() -> dict[str, dict]:
    """GE type -> {file, keys, fmk, imply, reads: {name: (method, default)}, sets: {name}}.
    A parse function's call of a shared npuq_plugin:: function reads as that function's body."""
    found = {}
    helpers = _plugin_helpers()
    for path in sorted((CUSTOM / "framework" / "onnx_plugin").glob("*.cc")):
        code = _code(path)
        for m in re.finditer(r'REGISTER_CUSTOM_OP\(\s*"(\w+)"\s*\)(.*?);', code, re.S):
            chain = m.group(2)
            keys = re.findall(r'"([^"]*)"', re.search(r"\.OriginOpType\(\s*\{(.*?)\}\s*\)", chain, re.S).group(1))
            fn = re.search(r"\.ParseParamsByOperatorFn\(\s*(\w+)\s*\)", chain).group(1)
            body = _block(code, re.search(rf"Status\s+{fn}\s*\(", code).end())
            body = re.sub(r"\bnpuq_plugin::(\w+)\s*\(", lambda c: helpers.get(c.group(1), c.group(0)), body)
            reads = {}
            for r in re.finditer(r"attrs\.(RequiredStr|RequiredInt|Str|Int|Float)\(\s*\"(\w+)\"\s*,([^;]*?)\)\s*\)?",
                                 body):
                method, name, rest = r.groups()
                args = [a.strip() for a in rest.split(",")]
                default = None if method.startswith("Required") else _literal(args[0])
                assert name not in reads, f"{path.name}: {name} read twice"
                reads[name] = (method, default)
            found[m.group(1)] = {
                "file": path.name, "keys": keys,
                "fmk": re.search(r"\.FrameworkType\(\s*(\w+)\s*\)", chain).group(1),
                "imply": re.search(r"\.ImplyType\(\s*([\w:]+)\s*\)", chain).group(1),
                "reads": reads, "sets": set(re.findall(r'op_dest\.SetAttr\(\s*"(\w+)"', body)),
            }
    return found


def _chain_calls(chain: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"\.(\w+)\(([^()]*(?:\{[^}]*\})?[^()]*)\)", chain)}


def _io_decls(code: str, owner: str) -> list[dict]:
    """owner->Input / Output("name")... chains (owner 'this' or an OpAICoreConfig variable)."""
    decls = []
    arrow = r"this->" if owner == "this" else rf"\b{owner}\."
    for m in re.finditer(rf"{arrow}(Input|Output)\(\s*\"(\w+)\"\s*\)([^;]*);", code):
        calls = _chain_calls(m.group(3))
        decls.append({
            "kind": m.group(1), "name": m.group(2), "param": calls["ParamType"].strip(),
            "dtypes": re.findall(r"ge::(DT_\w+)", calls["DataType"]),
            "formats": re.findall(r"ge::(FORMAT_\w+)", calls["Format"]),
        })
    return decls


_ATTR_DECL = r'Attr\(\s*"(\w+)"\s*\)\.AttrType\((?:ops::)?(\w+)\)\.(String|Int|Float|Bool)\(([^()]*)\)'


def _attr_decls(body: str, owner: str) -> list[tuple]:
    """owner->Attr("name").AttrType(...).Kind(default) / owner.Attr(...)...: (name, REQUIRED |
    OPTIONAL, kind, default or None), in order."""
    arrow = r"this->" if owner == "this" else rf"\b{owner}\."
    return [(name, req, kind, _literal(default) if default.strip() else None)
            for name, req, kind, default in re.findall(arrow + _ATTR_DECL, body)]


def _opdef_helpers() -> dict[str, list[tuple]]:
    """npuq_common.h's functions that declare attributes on an ops::OpDef: name -> attributes."""
    code = _code(CUSTOM / "op_host" / "npuq_common.h")
    return {m.group(1): _attr_decls(_block(code, m.end()), m.group(2))
            for m in re.finditer(r"inline\s+void\s+(\w+)\s*\(\s*ops::OpDef\s*&\s*(\w+)\s*\)", code)}


def _opdef(stem: str) -> dict:
    code = _code(CUSTOM / "op_host" / f"{stem}.cpp")
    cls = re.search(r"class\s+(\w+)\s*:\s*public\s+OpDef", code).group(1)
    body = _block(code, re.search(rf"explicit\s+{cls}\s*\(", code).end())
    # this->Attr(...) and calls of npuq_common.h's declaring functions, in the order they stand
    helpers = _opdef_helpers()
    attrs = []
    for m in re.finditer(rf"this->{_ATTR_DECL}|\bnpuq_host::(\w+)\(\s*\*this\s*\)", body):
        if m.group(5) is None:
            attrs += _attr_decls(m.group(0), "this")
        else:
            assert m.group(5) in helpers, f"{stem}.cpp: npuq_host::{m.group(5)}(*this) declares no attributes"
            attrs += helpers[m.group(5)]
    configs = {}
    for m in re.finditer(r'this->AICore\(\)\s*\.(?:SetTiling\(\s*[\w:]+\s*\)\s*\.)?AddConfig\(\s*"(\w+)"\s*(?:,\s*(\w+))?\)',
                         body):
        configs[m.group(1)] = m.group(2)
    return {
        "class": cls, "op_add": re.findall(r"OP_ADD\(\s*(\w+)\s*\)", code), "attrs": attrs,
        "io": _io_decls(body, "this"), "configs": configs,
        "config_io": {var: _io_decls(body, var) for var in configs.values() if var},
        "tiling": re.search(r"SetTiling\(\s*([\w:]+)\s*\)", body).group(1),
        "code": code,
    }


def _columns(io: list[dict], kind: str | None = None) -> set[tuple[str, ...]]:
    """The dtype columns (one dtype per input / output, vertically) of an OpDef io list."""
    io = [d for d in io if kind is None or d["kind"] == kind]
    assert len({len(d["dtypes"]) for d in io}) == 1, "DataType lists of unequal length"
    for d in io:
        assert len(d["formats"]) == len(d["dtypes"]), f"{d['name']}: Format and DataType lists differ in length"
        assert set(d["formats"]) == {"FORMAT_ND"}, d["name"]
    return set(zip(*[d["dtypes"] for d in io]))


def _expected_columns(op: defs.OpDef) -> set[tuple[str, ...]]:
    """Every assignment of the op's type variables, as dtype columns over inputs then outputs."""
    allowed = dict(op.types)
    variables = list(dict.fromkeys([t for _, t, _ in op.inputs] + [t for _, t in op.outputs]))
    slots = [t for _, t, _ in op.inputs] + [t for _, t in op.outputs]
    cols = set()
    for values in itertools.product(*(allowed[v] for v in variables)):
        pick = dict(zip(variables, values))
        cols.add(tuple(DT[pick[t]] for t in slots))
    return cols


def _struct_fields(name: str) -> list[str]:
    code = _code(PARAMS_H)
    return re.findall(r"uint32_t\s+(\w+)\s*;", _block(code, re.search(rf"struct\s+{name}\b", code).end()))


def _tiling_fields(stem: str) -> tuple[str, str, list[str]]:
    code = _code(CUSTOM / "op_host" / f"{stem}_tiling.h")
    cls = re.search(r"BEGIN_TILING_DATA_DEF\(\s*(\w+)\s*\)", code).group(1)
    body = code[code.index("BEGIN_TILING_DATA_DEF"):code.index("END_TILING_DATA_DEF")]
    fields = re.findall(r"TILING_DATA_FIELD_DEF\(\s*uint32_t\s*,\s*(\w+)\s*\)", body)
    reg = re.search(r"REGISTER_TILING_DATA_CLASS\(\s*(\w+)\s*,\s*(\w+)\s*\)", code)
    assert reg.group(2) == cls
    return reg.group(1), cls, fields


def _tiling_func(stem: str) -> tuple[str, str]:
    """The TilingFunc the OpDef of {stem}.cpp registers (SetTiling), as (the tiling data class it
    fills, its code): the function itself, or the npuq_common.h template it instantiates with
    its class (written in as the template argument)."""
    d = _opdef(stem)
    name = d["tiling"].split("::")[-1]
    body = _block(d["code"], re.search(rf"\b{name}\s*\(\s*gert::TilingContext", d["code"]).end())
    m = re.search(r"npuq_host::(\w+)<\s*(\w+)\s*>\s*\(", body)
    if m is None:
        return re.search(r"(\w+)\s+tiling;", body).group(1), body
    common = _code(CUSTOM / "op_host" / "npuq_common.h")
    t = re.search(rf"template\s*<\s*typename\s+(\w+)\s*>\s*inline\s+ge::graphStatus\s+{m.group(1)}\s*\(", common)
    assert t is not None, f"{stem}.cpp: npuq_host::{m.group(1)} is no TilingFunc template of npuq_common.h"
    return m.group(2), re.sub(rf"\b{t.group(1)}\b", m.group(2), _block(common, t.end()))


def _snake(op_type: str) -> str:
    """The msopgen rule (cmake/util/ascendc_impl_build.py optype_snake): kernel and file name."""
    return re.sub(r"([A-Z])", r"_\1", op_type[0].lower() + op_type[1:]).lower()


def _attr_kind(a: defs.Attr) -> str:
    return {S: "String", I: "Int", FL: "Float"}[a.type]


# ---------------------------------------------------------------- keys


PLUGINS = _plugins()


def test_every_key_is_registered_once():
    keys = [k for p in PLUGINS.values() for k in p["keys"]]
    assert len(keys) == len(set(keys)), "a key is registered twice"
    assert set(keys) == set(atc.OUR_KEYS), (set(keys) ^ set(atc.OUR_KEYS))


@pytest.mark.parametrize("onnx_op", [*OURS, *CANN_MAPPED])
def test_plugin_keys_are_our_keys(onnx_op):
    ge_type = {**{k: v[0] for k, v in OURS.items()}, **{k: v[0] for k, v in CANN_MAPPED.items()}}[onnx_op]
    plugin = PLUGINS[ge_type]
    want = {k for k in atc.OUR_KEYS if k.rsplit("::", 1)[1] == onnx_op}
    assert want, onnx_op
    assert sorted(plugin["keys"]) == sorted(want)
    assert plugin["fmk"] == "ONNX" and plugin["imply"] == "ImplyType::TVM"
    stem = (OURS.get(onnx_op) or CANN_MAPPED[onnx_op])[1]
    assert plugin["file"] == f"{stem}_plugin.cc"  # msopgen's name for the plugin of the op


def test_our_keys_are_both_layouts():
    """What OUR_KEYS is made of (so the per-op checks above cover both layouts)."""
    for op in [*(v[2] for v in OURS.values()), *(v[2] for v in CANN_MAPPED.values())]:
        assert set(op.atc_keys("domain") + op.atc_keys("default")) <= set(atc.OUR_KEYS)
        assert f"{op.domain}::{op.version}::{op.name}" in atc.OUR_KEYS
        assert {f"ai.onnx::{v}::{op.name}" for v in range(11, 19)} <= set(atc.OUR_KEYS)


# ---------------------------------------------------------------- attributes


def _all_ops():
    return [(k, v[0], v[2]) for k, v in OURS.items()] + [(k, v[0], v[2]) for k, v in CANN_MAPPED.items()]


@pytest.mark.parametrize("onnx_op,ge_type,op", _all_ops(), ids=[o for o, *_ in _all_ops()])
def test_plugin_reads_every_attribute(onnx_op, ge_type, op):
    reads = PLUGINS[ge_type]["reads"]
    assert list(reads) == [a.name for a in op.attrs], "the plugin must read every attribute, in order"
    for a in op.attrs:
        method, default = reads[a.name]
        kind = {"Str": S, "RequiredStr": S, "Int": I, "RequiredInt": I, "Float": FL}[method]
        assert kind == a.type, f"{a.name}: read as {method}, the ONNX attribute is {a.type}"
        if a.default is None:
            assert method.startswith("Required"), f"{a.name} has no default: it must be required"
        else:
            assert not method.startswith("Required"), a.name
            assert default == pytest.approx(a.default) if a.type == FL else default == a.default, a.name


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_plugin_sets_the_opdef_attributes(onnx_op):
    ge_type, stem, op, _ = OURS[onnx_op]
    assert PLUGINS[ge_type]["sets"] == {a.name for a in op.attrs} == {a[0] for a in _opdef(stem)["attrs"]}


def test_swiglu_plugin_sets_cann_attributes():
    """NPUDequantSwigluQuant -> CANN's DequantSwigluQuant IR (hicann/ops-nn quant/dequant_swiglu_quant/
    op_graph/dequant_swiglu_quant_proto.h): attribute names it has, and no OpDef of ours shadows it."""
    cann_ir = {"activate_left", "quant_mode", "dst_type", "round_mode", "activate_dim", "swiglu_mode",
               "clamp_limit", "glu_alpha", "glu_bias"}
    assert PLUGINS["DequantSwigluQuant"]["sets"] <= cann_ir
    assert PLUGINS["DequantSwigluQuant"]["sets"] >= {a.name for a in npu_ops.NPU_DEQUANT_SWIGLU_QUANT.attrs}
    # CANN's IR inputs / outputs, in order: ATC connects ONNX inputs by position
    assert [n for n, _, _ in npu_ops.NPU_DEQUANT_SWIGLU_QUANT.inputs] == [
        "x", "weight_scale", "activation_scale", "bias", "quant_scale", "quant_offset", "group_index"]
    assert [n for n, _ in npu_ops.NPU_DEQUANT_SWIGLU_QUANT.outputs] == ["y", "scale"]


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_opdef_attributes_match_defs(onnx_op):
    _, stem, op, _ = OURS[onnx_op]
    declared = _opdef(stem)["attrs"]
    assert [d[0] for d in declared] == [a.name for a in op.attrs], "OpDef attributes, in order"
    for (name, req, kind, default), a in zip(declared, op.attrs):
        assert kind == _attr_kind(a), name
        if a.default is None:
            assert req == "REQUIRED" and default is None, name
        else:
            assert req == "OPTIONAL" and default == a.default, name


def test_format_attribute_indexes():
    """npuq_common.h's ATTR_* (the indexes ParseFormatAttrs and Quantize's InferShape read the
    attributes at) are the positions DeclareFormatAttrs declares them at, the ONNX order of both
    ops' attributes; the op_host sources have no indexes of their own for them."""
    code = _code(CUSTOM / "op_host" / "npuq_common.h")
    indexes = {k.lower(): int(v) for k, v in re.findall(r"constexpr\s+size_t\s+ATTR_(\w+)\s*=\s*(\d+)\s*;", code)}
    declared = [a[0] for a in _opdef_helpers()["DeclareFormatAttrs"]]
    assert indexes == {name: i for i, name in enumerate(declared)}
    for onnx_op in ("QuantDequant", "Quantize"):
        _, stem, op, _ = OURS[onnx_op]
        assert declared == [a.name for a in op.attrs]
        body = _code(CUSTOM / "op_host" / f"{stem}.cpp")
        assert not re.search(r"constexpr\s+size_t\s+ATTR_", body), f"{stem}.cpp: indexes of its own"


# ---------------------------------------------------------------- inputs, outputs, SoCs


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_opdef_io_matches_defs(onnx_op):
    _, stem, op, _ = OURS[onnx_op]
    d = _opdef(stem)
    ins = [x for x in d["io"] if x["kind"] == "Input"]
    outs = [x for x in d["io"] if x["kind"] == "Output"]
    assert [x["name"] for x in ins] == [n for n, _, _ in op.inputs]
    assert [x["name"] for x in outs] == [n for n, _ in op.outputs]
    assert [x["param"] for x in ins] == ["OPTIONAL" if o else "REQUIRED" for _, _, o in op.inputs]
    assert all(x["param"] == "REQUIRED" for x in outs)
    assert _columns(d["io"]) == _expected_columns(op)


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_opdef_socs(onnx_op):
    """ascend910b only, with the OpDef's own lists (the kernels are not ported to ascend310p,
    whose AscendC lacks APIs they use: custom_ops/README.md)."""
    ge_type, stem, op, _ = OURS[onnx_op]
    d = _opdef(stem)
    assert d["configs"] == {"ascend910b": None}
    assert "OpAICoreConfig" not in d["code"] and "310" not in d["code"]
    assert d["class"] == ge_type and d["op_add"] == [ge_type]
    assert ge_type not in CANN_TYPES


def test_presets():
    presets = json.loads((CUSTOM / "CMakePresets.json").read_text())
    default = next(p for p in presets["configurePresets"] if p["name"] == "default")
    cache = default["cacheVariables"]
    assert cache["ASCEND_COMPUTE_UNIT"]["value"] == "ascend910b"
    assert cache["vendor_name"]["value"] == "npuq"
    assert "ASCEND_CANN_PACKAGE_PATH" in cache
    assert default["binaryDir"] == "${sourceDir}/build_out"
    for stem in (v[1] for v in OURS.values()):
        assert set(_opdef(stem)["configs"]) == set(cache["ASCEND_COMPUTE_UNIT"]["value"].split(";"))
    # the preflight's EZ3003 knows the same families
    from onnx_npuq.atc import CUSTOM_OP_FAMILIES
    assert set(CUSTOM_OP_FAMILIES) == set(cache["ASCEND_COMPUTE_UNIT"]["value"].split(";"))


# ---------------------------------------------------------------- Op JSON (msopgen input)


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_op_json_matches_opdef(onnx_op):
    ge_type, stem, op, _ = OURS[onnx_op]
    (entry,) = json.loads((CUSTOM / "op_json" / f"{stem}.json").read_text())
    assert entry["op"] == ge_type
    assert [x["name"] for x in entry["input_desc"]] == [n for n, _, _ in op.inputs]
    assert [x["name"] for x in entry["output_desc"]] == [n for n, _ in op.outputs]
    assert [x["param_type"] for x in entry["input_desc"]] == ["optional" if o else "required" for *_, o in op.inputs]
    assert all(x["param_type"] == "required" for x in entry["output_desc"])
    descs = entry["input_desc"] + entry["output_desc"]
    for x in descs:
        assert len(x["format"]) == len(x["type"]) and set(x["format"]) == {"ND"}, x["name"]
    assert set(zip(*[[JSON_DT[t] for t in x["type"]] for x in descs])) == _expected_columns(op)
    assert [a["name"] for a in entry["attr"]] == [a.name for a in op.attrs]
    for j, a in zip(entry["attr"], op.attrs):
        assert j["type"] == {S: "string", I: "int", FL: "float"}[a.type], a.name
        if a.default is None:
            assert j["param_type"] == "required" and "default_value" not in j, a.name
        else:
            assert j["param_type"] == "optional" and j["default_value"] == a.default, a.name


# ---------------------------------------------------------------- names the build derives


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_names_follow_the_op_type(onnx_op):
    """msopgen / opbuild derive file and kernel names from the op type (snake case)."""
    ge_type, stem, op, _ = OURS[onnx_op]
    assert _snake(ge_type) == stem
    kernel = _code(CUSTOM / "op_kernel" / f"{stem}.cpp")
    m = re.search(r'extern\s+"C"\s+__global__\s+__aicore__\s+void\s+(\w+)\s*\(([^)]*)\)', kernel)
    assert m.group(1) == stem
    args = [a.split()[-1] for a in m.group(2).split(",")]
    assert len(args) == len(op.inputs) + len(op.outputs) + 2 and args[-2:] == ["workspace", "tiling"]
    reg_type, _, _ = _tiling_fields(stem)
    assert reg_type == ge_type
    # generated Python / C names must stay legal: io names upper-cased into DTYPE_<NAME>, attribute
    # names become parameters of the generated op wrapper next to its own locals
    wrapper_locals = {"options", "ccec", "ccec_path", "tikcpp_path", "soc_version", "soc_short", "src", "op_type",
                      "code_channel", "op_info", "origin_func_name", "ascendc_src_dir", "ascendc_src_file",
                      "kernel_name", "impl_mode", "attr", "arg", "custom_compile_options",
                      "custom_all_compile_options", "custom_compile_options_soc", "custom_all_compile_options_soc"}
    names = [n for n, *_ in op.inputs] + [n for n, _ in op.outputs] + [a.name for a in op.attrs]
    assert not set(names) & wrapper_locals
    upper = [n.upper() for n in names[:len(op.inputs) + len(op.outputs)]]
    assert len(set(upper)) == len(upper)


# ---------------------------------------------------------------- tiling fields


@pytest.mark.parametrize("onnx_op", list(OURS))
def test_tiling_fields_are_params_fields(onnx_op):
    _, stem, _, struct = OURS[onnx_op]
    _, cls, fields = _tiling_fields(stem)
    assert fields == _struct_fields(struct)
    filled, code = _tiling_func(stem)
    assert filled == cls
    assert set(re.findall(r"tiling\.set_(\w+)\(", code)) == set(fields), "TilingFunc sets every field"
    assert f"{cls} tiling;" in code


@pytest.mark.parametrize("onnx_op", ["QuantDequant", "Dequantize", "Quantize"])
def test_kernel_copies_every_field(onnx_op):
    _, stem, _, struct = OURS[onnx_op]
    kernel = _code(CUSTOM / "op_kernel" / f"{stem}.cpp")
    copied = re.findall(r"\bp\.(\w+)\s*=\s*tilingData\.(\w+)\s*;", kernel)
    assert all(a == b for a, b in copied)
    assert [a for a, _ in copied] == _struct_fields(struct)
    assert f"npuq::{struct} p;" in kernel
    entry = {"QuantDequant": r"npuq::QuantDequant<DTYPE_X>\(", "Dequantize": r"npuq::Dequantize\(",
             "Quantize": r"npuq::Quantize<DTYPE_X>\("}[onnx_op]
    assert re.search(entry, kernel)


# ---------------------------------------------------------------- formats


def _format_table() -> list[tuple]:
    code = _code(CUSTOM / "op_host" / "npuq_common.h")
    body = _block(code, re.search(r"FormatInfo\s+FORMATS\[\]\s*=", code).end())
    rows = re.findall(r'\{\s*"(\w+)"\s*,\s*npuq::FormatId::(\w+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*([\w |]+?)\s*\}',
                      body)
    return [(n, i, int(b), int(e), int(s), set() if o == "0" else {x.strip() for x in o.split("|")})
            for n, i, b, e, s, o in rows]


def _format_ids() -> dict[str, int]:
    code = _code(PARAMS_H)
    body = _block(code, re.search(r"enum\s+class\s+FormatId", code).end())
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", body)}


_NON_DEFAULT = {"rounding": "even", "scale_rule": "rceil", "saturate": True, "variant": "amct", "group": 32,
                "scale": "row"}
_OPT_BITS = {"rounding": "OPT_ROUNDING", "scale_rule": "OPT_SCALE_RULE", "saturate": "OPT_SATURATE",
             "variant": "OPT_VARIANT", "group": "OPT_GROUP", "scale": "OPT_SCALE"}


def _accepts(name: str, option: str) -> bool:
    try:
        F.get_format(name, **{option: _NON_DEFAULT[option]})
    except (TypeError, ValueError):
        return False
    return True


def test_format_table_is_formats_names():
    table = _format_table()
    ids = _format_ids()
    assert [r[0] for r in table] == F.names()
    assert [ids[r[1]] for r in table] == list(range(len(F.names()))), "FormatId must be the names() order"
    assert sorted(ids.values()) == list(range(len(F.names())))
    for name, _, block, bits, scale_bytes, options in table:
        f = F.get_format(name)
        assert block == (f.block or 0), name
        assert bits == f.elem_bits, name
        assert scale_bytes == f.scale_bytes, name
        assert options == {_OPT_BITS[o] for o in _NON_DEFAULT if _accepts(name, o)}, name
    assert set(defs.OPTION_DEFAULTS) == set(_NON_DEFAULT)


def test_format_aliases_and_option_values():
    code = _code(CUSTOM / "op_host" / "npuq_common.h")
    aliases = dict(re.findall(r'\{\s*"(\w+)"\s*,\s*"(\w+)"\s*\}',
                              _block(code, re.search(r"FORMAT_ALIASES\[\]\s*=", code).end())))
    assert aliases == F.ALIASES

    def table(name):
        return re.findall(r'"(\w+)"', re.search(rf"{name}\[\]\s*=\s*\{{([^}}]*)\}}", code).group(1))

    assert tuple(table("ROUNDINGS")) == _mx.ROUNDINGS
    assert tuple(table("SCALE_RULES")) == _mx.SCALE_RULES
    assert tuple(table("VARIANTS")) == _hif4.VARIANTS
    assert tuple(table("SCALES")) == ("none", *_hif8.SCALES[1:])  # None is the attribute's "none"
    # the value each string becomes is the one params.h documents, and index 0 is the ONNX default
    params = PARAMS_H.read_text()
    for field, values, default in [("rounding", _mx.ROUNDINGS, "rounding"), ("scaleRule", _mx.SCALE_RULES, "scale_rule"),
                                   ("variant", _hif4.VARIANTS, "variant"), ("scale", ("none", *_hif8.SCALES[1:]), "scale")]:
        doc = re.search(rf"uint32_t\s+{field};\s*//(.*)", params).group(1)
        assert dict(re.findall(r'(\d+)\s+"(\w+)"', doc)) == {str(i): v for i, v in enumerate(values)}, field
        assert values[0] == defs.OPTION_DEFAULTS[default]


# ---------------------------------------------------------------- project files


def test_build_script():
    text = (CUSTOM / "build.sh").read_text()
    assert "ASCEND_HOME_PATH" in text and "custom_opp_" in text
    assert re.search(r'gen -i "\$HERE/op_json/\$op\.json" -f onnx -c "ai_core-\$GEN_SOC" -lan cpp', text)
    for stem in (v[1] for v in OURS.values()):
        assert stem in text.split("OPS=")[1].splitlines()[0]
    # kernels/include/npuq next to op_host (npuq_common.h includes npuq/workspace.h) and op_kernel
    for side in ("op_host", "op_kernel"):
        assert f'cp -r "$KERNEL_INCLUDE/npuq" "$GEN/{side}/npuq"' in text
        assert f'ln -s . "$GEN/{side}/npuq/npuq"' in text
    for h in ("params.h", "workspace.h", "plan.h"):
        assert h in text.split("for h in ")[1].splitlines()[0], f"build.sh checks for {h}"
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(CUSTOM / "build.sh")], check=True)
    # without CANN it stops at once, saying why
    if shutil.which("bash"):
        env = {"PATH": "/usr/bin:/bin"}
        r = subprocess.run(["bash", str(CUSTOM / "build.sh")], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and "ASCEND_HOME_PATH" in r.stderr


def _kernel_includes(header: Path) -> list[str]:
    return re.findall(r'#include\s+"([^"]+)"', _code(header))


def test_kernel_headers_resolve():
    """build.sh copies kernels/include/npuq next to the op_host and op_kernel sources with a link
    npuq/npuq -> ., so a header may include a sibling as "npuq/<name>.h" or "<name>.h"; anything
    else must be CANN's. What op_host includes (params.h, workspace.h and their includes) must be
    plain C++: no kernel_operator.h."""
    npuq_dir = ROOT / "kernels" / "include" / "npuq"
    cann = {"kernel_operator.h"}

    def sibling(inc: str) -> Path | None:
        name = inc[len("npuq/"):] if inc.startswith("npuq/") else inc
        return npuq_dir / name if (npuq_dir / name).exists() and "/" not in name else None

    for h in sorted(npuq_dir.glob("*.h")):
        for inc in _kernel_includes(h):
            assert sibling(inc) is not None or inc in cann, f"{h.name}: #include \"{inc}\" resolves nowhere"
    seen, todo = set(), [npuq_dir / n for n in ("params.h", "workspace.h") if (npuq_dir / n).exists()]
    while todo:
        h = todo.pop()
        if h in seen:
            continue
        seen.add(h)
        for inc in _kernel_includes(h):
            assert inc not in cann, f"op_host would include {inc} through {h.name}"
            if sibling(inc) is not None:
                todo.append(sibling(inc))
    host = " ".join(_code(p) for p in sorted((CUSTOM / "op_host").iterdir()) if p.suffix in (".cpp", ".h"))
    assert set(re.findall(r'#include\s+"(npuq/[^"]+)"', host)) <= {"npuq/params.h", "npuq/workspace.h"}
    assert '#include "npuq/workspace.h"' in _code(CUSTOM / "op_host" / "npuq_common.h")


# ---------------------------------------------------------------- compiled checks (g++)


def _gxx():
    gxx = shutil.which("g++")
    assert gxx is not None, "g++ is required to compile the custom_ops test harnesses"
    return gxx


def _build(tmp_path, name, sources, includes):
    exe = tmp_path / name
    cmd = [_gxx(), "-std=c++17", "-Wall", "-Wextra", "-Werror", *(f"-I{i}" for i in includes),
           *map(str, sources), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


def _headers(sources, includes) -> set[str]:
    """Every header the sources include (g++ -M), as paths."""
    cmd = [_gxx(), "-std=c++17", "-M", *(f"-I{i}" for i in includes), *map(str, sources)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    words = r.stdout.replace("\\\n", " ").split()
    return {w for w in words if not w.endswith(":")}


def _run(exe, lines):
    r = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    return r.stdout.splitlines()


def _common_harness(tmp_path):
    return _build(tmp_path, "common", [CUSTOM / "tests" / "common_harness.cc"],
                  [CUSTOM / "op_host", ROOT / "kernels" / "include"])


def test_common_header_against_python(tmp_path):
    """op_host/npuq_common.h, compiled: option checks as formats.get_format, ids as names(),
    packed widths as defs.packed_widths (what Quantize's InferShape and Dequantize's check use)."""
    exe = _common_harness(tmp_path)
    cases, want = [], []
    option_sets = [{}, *({k: v} for k, v in _NON_DEFAULT.items()), {"group": 7}, {"rounding": "even", "scale_rule": "rceil"},
                   {"scale": "tensor"}, {"scale": "row", "saturate": True}]
    scales = ("none", *_hif8.SCALES[1:])
    for name in [*F.names(), *F.ALIASES]:
        for opts in option_sets:
            for length in (1, 7, 32, 70, 4096):
                a = {**defs.OPTION_DEFAULTS, **opts}
                cases.append(f"opts {name} {a['rounding']} {a['scale_rule']} {int(a['saturate'])} {a['variant']} "
                             f"{a['group']} {a['scale']} {length}")
                try:
                    f = F.get_format(name, **opts)
                except (TypeError, ValueError):
                    want.append("bad")
                    continue
                cw, sw = defs.packed_widths(f, length)
                want.append(" ".join(map(str, [
                    "ok", F.names().index(f.name), _mx.ROUNDINGS.index(a["rounding"]),
                    _mx.SCALE_RULES.index(a["scale_rule"]), int(a["saturate"]), _hif4.VARIANTS.index(a["variant"]),
                    a["group"], scales.index(a["scale"]), cw, sw])))
    for bad in ("opts mxfp5 away floor 0 quant_cy 0 none 8", "opts mxfp4 up floor 0 quant_cy 0 none 8",
                "opts hif8 away floor 2 quant_cy 0 none 8", "opts int8sym away floor 0 quant_cy -1 none 8",
                "opts hif8 away floor 0 quant_cy 0 rows 8"):
        cases.append(bad)
        want.append("bad")
    assert _run(exe, cases) == want


def test_rows_and_cols(tmp_path):
    """npuq_host::RowsAndCols (x's shape in the QuantDequant / Quantize TilingFuncs): rows = all
    dimensions but the last, cols = the last; what it refuses, and why."""
    got = _run(_common_harness(tmp_path), ["shape 2 3 4", "shape 7", "shape 0 5", "shape 5 0", "shape",
                                           "shape 2 -1 4", "shape 3 -1", "shape 1 4294967295", "shape 1 4294967296",
                                           "shape 65536 65536 1", "shape 65535 65537 1"])
    assert got == ["ok 6 4", "ok 1 7", "ok 0 5", "ok 5 0",
                   "bad: x must have at least one dimension (the quantization axis is the last)",
                   "bad: unknown dimension at tiling time", "bad: x is too large for uint32 rows / cols",
                   "ok 1 4294967295", "bad: x is too large for uint32 rows / cols",
                   "bad: x is too large for uint32 rows / cols", "ok 4294967295 1"]


def test_row_split(tmp_path):
    got = _run(_common_harness(tmp_path), ["split 100 24", "split 5 24", "split 0 24", "split 10 8", "split 10 0",
                                           "split 48 24", "split 4294967296 24"])
    # rowsPerCore = ceil(rows / cores); blockDim = ceil(rows / rowsPerCore) <= cores; no rows: one core
    assert got == ["ok 20 5", "ok 5 1", "ok 1 0", "ok 5 2", "bad", "ok 24 2", "bad"]


def test_no_private_ub_arithmetic():
    """op_host sizes nothing in UB itself: tile rows and workspace come from kernels/ (workspace.h),
    and no TilingFunc refuses a row for its length."""
    host = {p.name: _code(p) for p in (CUSTOM / "op_host").iterdir() if p.suffix in (".cpp", ".h")}
    for name, code in host.items():
        for word in ("BytesPerRow", "UB_RESERVED", "F32_WORK_ROWS", "GetCoreMemSize", "CoreMemType::UB",
                     "does not fit the unified buffer"):
            assert word not in code, f"{name}: {word}"
    assert re.search(r"npuq::QuantDequantTileRows\b", host["npuq_common.h"])
    assert re.search(r"npuq::QuantDequantWorkspaceBytes\b", host["npuq_common.h"])
    assert re.search(r"npuq::DequantizeTileRows\b", host["npuq_common.h"])
    assert re.search(r"npuq::DequantizeWorkspaceBytes\b", host["npuq_common.h"])
    assert re.search(r"npuq_host::TileQuantDequant\b", host["npuq_quant_dequant.cpp"])
    assert re.search(r"npuq_host::TileDequantize\b", host["npuq_dequantize.cpp"])
    assert re.search(r"npuq::QuantizeTileRows\b", host["npuq_common.h"])
    assert re.search(r"npuq::QuantizeWorkspaceBytes\b", host["npuq_common.h"])
    assert re.search(r"npuq_host::TileQuantize\b", host["npuq_quantize.cpp"])
    readme = (CUSTOM / "README.md").read_text(encoding="utf-8")
    assert "9,400" not in readme and "refused at tiling time" not in readme


_PLAN_H = ROOT / "kernels" / "include" / "npuq" / "plan.h"
_QD_FIXED_BLOCK = {"hif4": 64, "hifx4_v12": 64, "mxfp4": 32, "mxfp8e4m3": 32, "mxfp8e5m2": 32, "nvf4": 16,
                   "nvfp4": 16}


@functools.cache
def _plan_constant(name: str) -> int:
    return int(re.search(rf"constexpr\s+uint32_t\s+{name}\s*=\s*(\d+)", _code(_PLAN_H)).group(1))


def _qd_plan(name: str, group: int, dtype_bytes: int, cols: int) -> tuple[int, int, int]:
    """(tileRows, chunkBlocks, wideBlocks) of kernels/README.md's QuantDequant tiles: whole rows of
    32-byte-aligned blocks in a kQdTileElems tile, else runs of whole blocks, else pieces of a block."""
    tile, align = _plan_constant("kQdTileElems"), _plan_constant("kUbBlockBytes") // dtype_bytes
    if name in _QD_FIXED_BLOCK:
        block = _QD_FIXED_BLOCK[name]
    else:  # hif8: no block, the row; per channel (group 0) or a group longer than the row: the row
        block = cols if name == "hif8" or group == 0 or group >= cols else group
    stride = -(-block // align) * align
    row_stride = -(-cols // block) * stride
    if row_stride <= tile:
        return tile // row_stride, 0, 0
    return (0, tile // stride, 0) if stride <= tile else (0, 0, 1)


def _check_rows(rows: int, cores: int, block_dim: int, rows_per_core: int):
    """The row split as the kernels read it (block_kernel.h / dequantize.h Init): core i takes rows
    [i * perCore, +perCore), perCore = rowsPerCore or rows; every row once, no idle core launched."""
    assert rows_per_core == -(-rows // cores)
    assert 1 <= block_dim <= cores
    per_core = rows_per_core or rows
    ranges = [(min(i * per_core, rows), min(i * per_core + per_core, rows)) for i in range(block_dim)]
    assert [r for a, b in ranges for r in range(a, b)] == list(range(rows))
    assert rows == 0 or all(a < b for a, b in ranges)


_QD_CONFIGS = [(n, 0) for n in F.names()] + [(n, g) for n in ("int8sym", "int4sym", "fp8e4m3", "fp8e5m2")
                                               for g in (7, 32, 5000)]
_COLS = (1, 7, 16, 100, 1024, 2048, 4096, 4097, 8192, 9400, 9472, 14336, 16384, 65536)
_ROWS_CORES = ((1, 24), (100, 24), (48, 48), (7, 40), (0, 24))


def test_quant_dequant_tiling_is_the_kernel_plan(tmp_path):
    """TilingNpuqQuantDequant's numbers (npuq_host::TileQuantDequant) are the kernels' plan: the
    kernel, planning the params it receives, gets the tile rows op_host put there (0: a row is cut
    into pieces), and the tile rows follow the UB layout of kernels/README.md; the rows split over
    at most the vector cores; NVFP4 gets one 32-byte workspace slot per launched core."""
    cases = [(name, group, dtype_bytes, rows, cols, cores) for name, group in _QD_CONFIGS for dtype_bytes in (4, 2)
             for cols in _COLS for rows, cores in _ROWS_CORES]
    got = _run(_common_harness(tmp_path), [f"qd {' '.join(map(str, c))}" for c in cases])
    assert len(got) == len(cases)
    for (name, group, dtype_bytes, rows, cols, cores), line in zip(cases, got):
        where = f"{name} group={group} {dtype_bytes}-byte {rows}x{cols} on {cores} cores: {line}"
        ok, block_dim, rows_per_core, tile_rows, workspace, plan, *kernel = line.split()
        assert ok == "ok" and plan == "plan", where
        block_dim, rows_per_core, tile_rows, workspace = map(int, (block_dim, rows_per_core, tile_rows, workspace))
        _check_rows(rows, cores, block_dim, rows_per_core)
        assert tuple(map(int, kernel)) == _qd_plan(name, group, dtype_bytes, cols), where
        assert tile_rows == int(kernel[0]), where
        assert workspace == (32 * block_dim if name == "nvfp4" else 0), where


def test_quant_dequant_long_rows_are_accepted(tmp_path):
    """A 14,336-column float16 / bfloat16 row (an LLM MLP width; the old whole-row op_host tiling
    refused anything past ~9,400) is tiled for every format: the kernel cuts it into runs of whole
    blocks, or (no block scale, per channel) into pieces."""
    configs = [(n, 0) for n in F.names()] + [("int8sym", 128), ("int4sym", 5000)]
    exe = _common_harness(tmp_path)
    got = _run(exe, [f"qd {name} {group} 2 8 14336 24" for name, group in configs])
    for (name, group), line in zip(configs, got):
        ok, block_dim, rows_per_core, tile_rows, workspace, _, *kernel = line.split()
        assert ok == "ok" and (block_dim, rows_per_core, tile_rows) == ("8", "1", "0"), f"{name}: {line}"
        assert tuple(map(int, kernel)) == _qd_plan(name, group, 2, 14336), f"{name}: {line}"
    assert got[F.names().index("mxfp4")] == "ok 8 1 0 0 plan 0 128 0"  # runs of 128 blocks of 32
    assert got[F.names().index("nvfp4")] == "ok 8 1 0 256 plan 0 256 0"  # 8 cores x 32 bytes
    assert got[F.names().index("hif8")] == "ok 8 1 0 0 plan 0 0 1"  # one 14336-element "block": pieces
    # one row of 2^20 float32 columns, and an empty last axis (the kernel returns before planning)
    assert _run(exe, ["qd int8sym 0 4 3 1048576 24", "qd mxfp4 0 4 5 0 24"]) == [
        "ok 3 1 0 0 plan 0 0 1", "ok 5 1 0 0 plan - - -"]


def _qz_plan(name: str, group: int, dtype_bytes: int, cols: int) -> tuple[int, int, int]:
    """_qd_plan for Quantize (kernels/README.md): the block is formats.Packed's (a group even past
    the row), and a block that is not whole 32-byte blocks of the dtype is strided to whole
    32-byte blocks of its codes (32 elements of 8-bit codes, 64 of 4-bit)."""
    tile, align = _plan_constant("kQdTileElems"), _plan_constant("kUbBlockBytes") // dtype_bytes
    if name in _QD_FIXED_BLOCK:
        block = _QD_FIXED_BLOCK[name]
    else:
        block = group or cols
    stride = -(-block // align) * align
    if stride != block:
        code_align = 64 if name in ("int4sym", "mxfp4", "nvf4", "hif4", "hifx4_v12") else 32
        stride = -(-block // code_align) * code_align
    row_stride = -(-cols // block) * stride
    if row_stride <= tile:
        return tile // row_stride, 0, 0
    return (0, tile // stride, 0) if stride <= tile else (0, 0, 1)


# every configuration npuq::Quantize takes (ops.defs: not nvfp4), with scaled HiF8
_QZ_CONFIGS = [(n, 0, "none") for n in F.names() if n != "nvfp4"] + [
    (n, g, "none") for n in ("int8sym", "int4sym", "fp8e4m3", "fp8e5m2") for g in (7, 32, 5000)] + [
    ("hif8", 0, "row"), ("hif8", 0, "tensor")]


def test_quantize_tiling_is_the_kernel_plan(tmp_path):
    """TilingNpuqQuantize (npuq_host::TileQuantize) tiles every shape npuq::Quantize takes, with
    the Quantize kernel's own plan (tile rows, rows over the cores, HiF8 scale="tensor": two
    32-byte slots per launched core); nvfp4 is refused as ops.defs refuses it."""
    cases = [(name, group, scale, dtype_bytes, rows, cols, cores) for name, group, scale in _QZ_CONFIGS
             for dtype_bytes in (4, 2) for cols in _COLS for rows, cores in _ROWS_CORES]
    exe = _common_harness(tmp_path)
    got = _run(exe, [f"qz {' '.join(map(str, c))}" for c in cases])
    assert len(got) == len(cases)
    for (name, group, scale, dtype_bytes, rows, cols, cores), line in zip(cases, got):
        where = f"{name} group={group} scale={scale} {dtype_bytes}-byte {rows}x{cols} on {cores} cores: {line}"
        ok, block_dim, rows_per_core, tile_rows, workspace, plan, *kernel = line.split()
        assert ok == "ok" and plan == "plan", where
        block_dim, rows_per_core, tile_rows, workspace = map(int, (block_dim, rows_per_core, tile_rows, workspace))
        _check_rows(rows, cores, block_dim, rows_per_core)
        if cols == 0:
            assert kernel == ["-", "-", "-"] and tile_rows == 0, where
            continue
        assert tuple(map(int, kernel)) == _qz_plan(name, group, dtype_bytes, cols), where
        assert tile_rows == int(kernel[0]), where
        assert workspace == (64 * block_dim if scale == "tensor" else 0), where
    assert _run(exe, ["qz nvfp4 0 none 4 8 64 24"]) == [
        "bad: nvfp4 is two-level (a per-tensor scale besides the block scales); Quantize has no tensor-scale output"]


_DQ_BLOCKS = [(n, F.get_format(n).block) for n in F.names() if F.get_format(n).block] + [
    (n, b) for n in ("int8sym", "int4sym", "fp8e4m3", "fp8e5m2") for b in (0, 7, 32, 5000)]


def test_dequantize_tiling_is_the_kernel_plan(tmp_path):
    """TilingNpuqDequantize's numbers (npuq_host::TileDequantize) are the Dequantize kernel's plan
    of the params it receives: tile rows >= 1 (1 when a row is cut into pieces), never a refusal
    for a long row; no user workspace."""
    cases = [(name, block, length, rows, cores, int(name == "nvfp4")) for name, block in _DQ_BLOCKS
             for length in (1, 7, 64, 1000, 2048, 2049, 5000, 14336, 65536) for rows, cores in _ROWS_CORES]
    exe = _common_harness(tmp_path)
    got = _run(exe, [f"dq {' '.join(map(str, c))}" for c in cases])
    assert len(got) == len(cases)
    for (name, block, length, rows, cores, _), line in zip(cases, got):
        where = f"{name} block={block} {rows}x{length} on {cores} cores: {line}"
        ok, block_dim, rows_per_core, tile_rows, workspace, plan, kernel_rows, chunked, width = line.split()
        assert ok == "ok" and plan == "plan", where
        _check_rows(rows, cores, int(block_dim), int(rows_per_core))
        assert int(tile_rows) == int(kernel_rows) >= 1 and int(workspace) == 0, where
        assert chunked == "0" and int(width) == length or chunked == "1" and tile_rows == "1", where
    assert _run(exe, ["dq int8sym 0 1024 10 4 0", "dq mxfp4 32 14336 3 24 0", "dq hif8 1 0 3 4 0"]) == [
        "ok 4 3 2 0 plan 2 0 1024",    # 1024 float32 outputs per row: 2 rows of a 2048-float tile
        "ok 3 1 1 0 plan 1 1 2048",    # pieces of 64 blocks of 32
        "ok 3 1 0 0 plan - - -"]       # no element: the kernel returns at once


def _json_dump(v, top: bool = True) -> str:
    """A Python json.loads value as json_harness.cc dumps the stub's (objects in key order, as
    nlohmann::json's std::map; at the top, how many elements a range-for visits)."""
    if v is None:
        out = "null"
    elif isinstance(v, bool):
        out = "true" if v else "false"
    elif isinstance(v, int):
        out = f"i:{v}"
    elif isinstance(v, float):
        out = "f:%.17g" % v
    elif isinstance(v, str):
        out = "s:" + v.encode("utf-8").hex()
    elif isinstance(v, list):
        out = "[" + ",".join(_json_dump(e, False) for e in v) + "]"
    else:
        out = "{" + ",".join(_json_dump(v[k], False) for k in sorted(v)) + "}"
    if not top:
        return out
    return f"{0 if v is None else len(v) if isinstance(v, (list, dict)) else 1}#{out}"


# json_harness.cc cases: JSON texts (with no NUL or 0x1F byte, its separators).
JSON_VALID = [
    "null", "true", "false", " \t\r\n 42 \n", "\n[\t1\r,\n2 ]\t",
    "0", "-0", "-12", "9223372036854775807", "-9223372036854775808",
    "1.5", "-0.0", "0.1", "1e3", "1E+3", "2.5e-3", "-1.25E-2", "123.456e7", "1e-400",
    "1.7976931348623157e308", "4.9e-324",
    '""', '"plain"', '"\\"\\\\\\/\\b\\f\\n\\r\\t"', '"\\u0041\\u00e9\\u20AC"', '"a\\u0000b"',
    '"\\ud83d\\ude00"', '"\\uD834\\uDD1E x"', '"\\udbff\\udfff"', '"é€😀"',
    "[]", "[ ]", " [ 1 , \"x\" , null , [ ] , { } ] ", "[1,[2,[3,[4]]],{\"a\":[true]}]",
    "{}", "{ \"b\" : 1 , \"a\" : 2 }", '{"k":1,"k":[2]}', '{"é":1,"z":2,"A":3,"":4}',
    '{"attribute":[{"name":"format","type":3,"s":"mxfp4"},{"name":"group","type":2,"i":-32},'
    '{"name":"alpha","type":1,"f":"1.702"}]}',
    "[" * 200 + "]" * 200,
]
# What the stub parses differently from Python: integers past int64 become floats.
JSON_FLOATS = {"9223372036854775808": "1#f:9.2233720368547758e+18",
               "-123456789012345678901234567890": "1#f:-1.2345678901234568e+29"}
JSON_MALFORMED = [
    "", " ", "nul", "tru", "truex", "nulll", "True", "'a'", "1 2", "{} x", "[1]]", "{}}",
    "[", "]", "[1,]", "[,1]", "[1 2]", "[1,,2]", "{", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}",
    "{\"a\":1,}", "{\"a\":1", "{1:2}", "{\"a\":1 \"b\":2}",
    '"abc', '"\\x"', '"\\', '"\\u12"', '"\\u12G4"', '"\\u-123"', '"\\u+123"', '"a\x01b"', '"a\nb"',
    '"\\ud83d"', '"\\ud83dx"', '"\\ud83d\\u0041"', '"\\ud83d\\ud83d"', '"\\ude00"', '"\\ud83d\\"',
    "01", "-01", "-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "--1", "0x10", "1_000", "NaN", "Infinity", "-Infinity",
    "1e400", "-1.8e308",  # past DBL_MAX: nlohmann's "number overflow"
    "[" * 600 + "]" * 600,  # deeper than the stub's MAX_DEPTH
]
# Python's json module takes these; RFC 8259 / nlohmann do not (the last: the stub's depth limit).
JSON_PY_ACCEPTS = {"NaN", "Infinity", "-Infinity", "1e400", "-1.8e308", '"\\ud83d"', '"\\ud83dx"', '"\\ud83d\\u0041"',
                   '"\\ud83d\\ud83d"', '"\\ude00"', "[" * 600 + "]" * 600}
JSON_FIND = [('{"b":1,"a":2}', "a", "i:2"), ('{"b":1,"a":2}', "b", "i:1"), ('{"b":1,"a":2}', "c", "end"),
             ('{"b":1,"a":2}', "", "end"), ('{"":[1]}', "", "[i:1]"), ('{"k":1,"k":"v"}', "k", "s:76"),
             ('{"\\u00e9":{"x":null}}', "é", "{null}"), ("[1,2]", "0", "end"), ('"a"', "a", "end"),
             ("null", "a", "end"), ("3", "a", "end")]


def test_json_stub(tmp_path):
    """tests/stubs/nlohmann/json.hpp, compiled: parses what Python's json module parses to the
    same values (escapes, surrogate pairs -> UTF-8, numbers), refuses malformed text (discarded,
    or an exception), finds keys and iterates as nlohmann::json does."""
    exe = _build(tmp_path, "json", [CUSTOM / "tests" / "json_harness.cc"], [STUBS])
    for text in JSON_MALFORMED:
        if text in JSON_PY_ACCEPTS:
            continue
        with pytest.raises(ValueError):
            json.loads(text)
    cases = [*JSON_VALID, *JSON_FLOATS, *JSON_MALFORMED, *(f"{t}\x1f{k}" for t, k, _ in JSON_FIND)]
    want = [*(_json_dump(json.loads(t)) for t in JSON_VALID), *JSON_FLOATS.values(),
            *(["discarded"] * len(JSON_MALFORMED)), *(w for _, _, w in JSON_FIND)]
    r = subprocess.run([str(exe)], input="".join(f"{c}\0" for c in cases).encode("utf-8"), capture_output=True,
                       check=True)
    got = r.stdout.decode("ascii").splitlines()
    assert len(got) == len(cases)
    for case, g, w in zip(cases, got, want):
        assert g == w, case


def _ge_attribute_json(attrs: dict, types: dict) -> str:
    """An ONNX node's attributes as GE hands them to a ParseParamsByOperatorFn plugin
    (Ascend/parser parser/common/convert/pb2json.cc): type number, "i" integer, "f" "%g" string,
    "s" string."""
    out = []
    for name, value in attrs.items():
        t = types[name]
        if t == S:
            out.append({"name": name, "type": 3, "s": value})
        elif t == I:
            out.append({"name": name, "type": 2, "i": int(value)})
        else:
            out.append({"name": name, "type": 1, "f": "%g" % value})
    return json.dumps({"attribute": out})


def _expect(kind_value: str):
    kind, value = kind_value.split(":", 1)
    return {"s": str, "i": int, "b": lambda v: bool(int(v)), "f": float}[kind](value)


def test_plugins_run(tmp_path):
    """The four plugins' parse functions, compiled against tests/stubs (CANN's signatures and the
    nlohmann/json stub), fed GE's "attribute" JSON: each attribute lands where it should, defaults
    fill in, required ones are required, wrong types are refused."""
    plugins = sorted((CUSTOM / "framework" / "onnx_plugin").glob("*.cc"))
    includes = [STUBS, CUSTOM / "framework" / "onnx_plugin"]
    # -I directories come before the system ones, so <nlohmann/json.hpp> is the stub even where
    # nlohmann-json3-dev is installed: check that from the headers g++ actually reads.
    deps = _headers(plugins, includes)
    assert [d for d in deps if "nlohmann" in d] == [str(STUBS / "nlohmann" / "json.hpp")]
    exe = _build(tmp_path, "plugins", [CUSTOM / "tests" / "plugin_harness.cc", *plugins], includes)
    cases, want = [], []
    for onnx_op, (ge_type, _, op, _) in OURS.items():
        types = {a.name: a.type for a in op.attrs}
        required = {a.name: {S: "mxfp4", I: 32}[a.type] for a in op.attrs if a.default is None}
        given = {**required, **{a.name: {S: "x", I: 3}.get(a.type) for a in op.attrs if a.default is not None}}
        for attrs in (given, required):
            cases.append(f"{ge_type}\t{_ge_attribute_json(attrs, types)}\t-")
            full = {a.name: a.default for a in op.attrs if a.default is not None} | attrs
            want.append({k: v for k, v in full.items()})
        cases.append(f"{ge_type}\t-\t-")  # no attributes: the required ones are missing
        want.append(None)
        bad = dict(required)
        bad[op.attrs[0].name] = 5  # a string attribute given as an int
        cases.append(f"{ge_type}\t{_ge_attribute_json(bad, {**types, op.attrs[0].name: I})}\t-")
        want.append(None)
    sw = npu_ops.NPU_DEQUANT_SWIGLU_QUANT
    types = {a.name: a.type for a in sw.attrs}
    ir_v2 = "swiglu_mode=i:0;clamp_limit=f:7;glu_alpha=f:1.702;glu_bias=f:1"
    given = {"activate_left": 1, "quant_mode": 1, "swiglu_mode": 1, "clamp_limit": 6.5, "glu_alpha": 1.5, "glu_bias": 0.25}
    cases += [f"DequantSwigluQuant\t{_ge_attribute_json(given, types)}\t{ir_v2}",
              f"DequantSwigluQuant\t-\t{ir_v2}",
              f"DequantSwigluQuant\t{_ge_attribute_json(given, types)}\t-",  # an IR without swiglu_mode
              f"DequantSwigluQuant\t{_ge_attribute_json({'quant_mode': 0}, types)}\t-",
              f"DequantSwigluQuant\t{_ge_attribute_json({'quant_mode': 2}, types)}\t-"]
    want += [{"activate_left": True, "quant_mode": "dynamic", "swiglu_mode": 1, "clamp_limit": 6.5, "glu_alpha": 1.5,
              "glu_bias": 0.25},
             {"activate_left": False, "quant_mode": "static", "swiglu_mode": 0, "clamp_limit": 7.0,
              "glu_alpha": pytest.approx(1.702), "glu_bias": 1.0},
             None,
             {"activate_left": False, "quant_mode": "static"},
             None]
    out = _run(exe, cases)
    results, regs = out[:len(cases)], out[len(cases):]
    for case, line, w in zip(cases, results, want):
        if w is None:
            assert line == "fail", case
            continue
        status, _, rest = line.partition("\t")
        assert status == "ok", case
        got = {kv.split("=", 1)[0]: _expect(kv.split("=", 1)[1]) for kv in rest.split(";") if kv}
        assert got == w, case
    registered = {r.split("\t")[1]: r.split("\t")[4:] for r in regs}
    assert set(registered) == {*(v[0] for v in OURS.values()), "DequantSwigluQuant"}
    assert sorted(k for ks in registered.values() for k in ks) == sorted(atc.OUR_KEYS)
    assert all(r.split("\t")[2:4] == ["5", "1"] for r in regs)  # ONNX, ImplyType::TVM


def test_a_kernel_with_sync_all_is_mixed_type_and_batch_mode():
    """910B: a hard SyncAll needs KERNEL_TYPE_MIX_AIV_1_0 in the kernel entry (else no
    cross-core sync) and batch schedule mode in the tiling (else a core may wait on one not
    launched). Which ops reach SyncAll: those whose kernels include block_kernel.h's tensor
    amax; static, since neither the build nor the device runs here."""
    kernels = ROOT / "kernels" / "include" / "npuq"
    assert "SyncAll()" in (kernels / "block_kernel.h").read_text()
    for stem in ("npuq_quant_dequant", "npuq_quantize"):
        entry = (CUSTOM / "op_kernel" / f"{stem}.cpp").read_text()
        assert re.search(r"#if defined\(__CCE_AICORE__\) && __CCE_AICORE__ == 220\s*\n(\s*//.*\n)*"
                         r"\s*KERNEL_TASK_TYPE_DEFAULT\(KERNEL_TYPE_MIX_AIV_1_0\);\s*\n#endif", entry), stem
        _, tiling = _tiling_func(stem)
        assert re.search(r"if \(npuq::NeedsTensorAmax\(p\) && context->SetScheduleMode\(1\) != ge::GRAPH_SUCCESS\)"
                         r"\s*\{\s*return (npuq_host::)?Refuse\w*\(", tiling), stem
    assert '#include "npuq/quantize.h"' in (CUSTOM / "op_kernel" / "npuq_quantize.cpp").read_text()
    assert '#include "npuq/block_kernel.h"' in (kernels / "quantize.h").read_text()
    # Dequantize has no tensor-amax pass
    text = (CUSTOM / "op_kernel" / "npuq_dequantize.cpp").read_text()
    assert re.findall(r'#include "npuq/(\w+)\.h"', text) == ["dequantize"] and "SyncAll" not in text
    assert "SyncAll" not in (kernels / "dequantize.h").read_text()


# ---------------------------------------------------------------- op_host, compiled against the stubs

_GE_DT = {"DT_FLOAT": 0, "DT_FLOAT16": 1, "DT_UINT8": 4, "DT_BF16": 27}
_LIB_API_WORKSPACE = 16 << 20  # what tests/stubs' PlatformAscendC returns for GetLibApiWorkSpaceSize


@functools.cache
def _op_host_exe(tmp_dir: str) -> Path:
    """op_host/*.cpp (OpDefs, TilingFuncs, InferShape / InferDataType) and op_host_harness.cc,
    compiled with -Wall -Wextra -Werror against tests/stubs (CANN's signatures)."""
    return _build(Path(tmp_dir), "op_host", [CUSTOM / "tests" / "op_host_harness.cc",
                                             *sorted((CUSTOM / "op_host").glob("*.cpp"))],
                  [STUBS, CUSTOM / "op_host", ROOT / "kernels" / "include"])


@pytest.fixture(scope="module")
def op_host(tmp_path_factory):
    exe = _op_host_exe(str(tmp_path_factory.mktemp("op_host")))

    def run(cases):
        lines = _run(exe, cases)
        head = [x for x in lines[:len(lines) - len(cases)]]
        return head, lines[len(lines) - len(cases):]
    run.exe = exe
    return run


def test_op_host_registers_what_the_sources_say(op_host):
    """The OpDefs as CANN's OpDef API records them (OP_ADD, Input / Output / Attr chains,
    AddConfig) are what the source reading above finds: one check of the other."""
    head, _ = op_host([])
    registered = {line.split()[1]: line.split()[2] for line in head if line.startswith("opdef ")}
    assert registered == {v[0]: "ascend910b" for v in OURS.values()}
    for onnx_op, (ge_type, stem, op, _) in OURS.items():
        d = _opdef(stem)
        io = [line.split()[2:] for line in head if line.startswith(f"io {ge_type} ")]
        want = [[x["kind"], x["name"], str({"REQUIRED": 2, "OPTIONAL": 1}[x["param"]]),
                 ",".join(str(_GE_DT[t]) for t in x["dtypes"]), ",".join("2" for _ in x["formats"])] for x in d["io"]]
        assert io == want, onnx_op
        attrs = [line.split()[2:] for line in head if line.startswith(f"attr {ge_type} ")]
        want = [[name, str({"REQUIRED": 2, "OPTIONAL": 1}[req]), kind, "-" if default is None else str(default)]
                for name, req, kind, default in d["attrs"]]
        assert attrs == want, onnx_op
        assert [a[0] for a in attrs] == [a.name for a in op.attrs]


def _x(dtype: int, *dims: int) -> str:
    return f"{dtype}:{','.join(map(str, dims))}"


def test_op_host_tiling_runs(op_host, tmp_path):
    """The TilingFuncs of op_host/*.cpp, run through CANN's context API (stubbed): the tiling
    data is npuq::QuantDequantParams / DequantizeParams field by field, with the row split and
    tile rows of npuq_host (the kernels' plan, checked above); batch schedule mode exactly where
    the kernel reaches SyncAll; workspace = the library's + the kernel's; refusals fail."""
    configs = [(n, {}) for n in F.names()] + [("hif8", {"scale": "tensor"}), ("int4sym", {"group": 32}),
                                             ("mxfp4", {"rounding": "even", "scale_rule": "rceil"})]
    shapes = [(8, 1024), (100, 14336), (3, 7)]
    cases, want = [], []
    common = _common_harness(tmp_path)
    for name, opts in configs:
        for dtype, nbytes in ((0, 4), (1, 2), (27, 2)):
            for rows, cols in shapes:
                attrs = ",".join(f"{k}={v}" for k, v in {"format": name, **opts}.items())
                cases.append(f"tile NpuqQuantDequant 24 {_x(dtype, rows, cols)} {attrs}")
                want.append((name, opts, nbytes, rows, cols))
    _, got = op_host(cases)
    expect = _run(common, [f"qd {n} {o.get('group', 0)} {b} {r} {c} 24" for n, o, b, r, c in want])
    for case, line, (name, opts, _, rows, cols), ref in zip(cases, got, want, expect):
        ok, block_dim, mode, workspace, *words = line.split()
        _, ref_block, ref_per_core, ref_tile, ref_ws, *_ = ref.split()
        assert ok == "ok" and len(words) == len(_struct_fields("QuantDequantParams")), case
        fields = dict(zip(_struct_fields("QuantDequantParams"), map(int, words)))
        assert (fields["rows"], fields["cols"], fields["format"]) == (rows, cols, F.names().index(name)), case
        assert (block_dim, str(fields["rowsPerCore"]), str(fields["tileRows"])) == (ref_block, ref_per_core, ref_tile)
        sync_all = name == "nvfp4" or opts.get("scale") == "tensor"
        # (the common harness's qd has no scale option: the tensor amax's 32 bytes a core, as nvfp4's)
        user = 32 * int(block_dim) if opts.get("scale") == "tensor" else int(ref_ws)
        assert int(workspace) == _LIB_API_WORKSPACE + user, case
        assert mode == ("1" if sync_all else "0"), case
        assert fields["group"] == opts.get("group", 0) and fields["rounding"] == (opts.get("rounding") == "even")
    # refusals: an unknown format, an option the format does not take, an int dtype, 0-d x;
    # Quantize of nvfp4 (no tensor-scale output, as ops.defs), and Quantize's own bad input
    refused = ["tile NpuqQuantDequant 24 0:4,32 format=mxfp5", "tile NpuqQuantDequant 24 0:4,32 format=hif8,group=7",
               "tile NpuqQuantDequant 24 3:4,32 format=mxfp4", "tile NpuqQuantDequant 24 0: format=mxfp4",
               "tile NpuqQuantize 24 0:4,64 format=nvfp4", "tile NpuqQuantize 24 0:4,64 format=int4sym,rounding=even",
               "tile NpuqQuantize 24 3:4,64 format=mxfp4", "tile NpuqQuantize 24 0: format=mxfp4",
               "tile NpuqDequantize 24 4:8,17;4:8,1;- format=mxfp4,block=32,length=32"]
    _, got = op_host(refused)
    assert got == ["fail"] * 9
    # each refusal says why on stderr, after the op (GE type and ONNX name)
    err = subprocess.run([str(op_host.exe)], input="\n".join(refused) + "\n", capture_output=True, text=True,
                         check=True).stderr.splitlines()
    why = ["unknown format (expected one of onnx_npuq.formats.names())", "an option is set that this format does not take",
           "x must be float, float16 or bfloat16", "x must have at least one dimension (the quantization axis is the last)"]
    assert err == [f"[npuq] NpuqQuantDequant (ONNX npuq::QuantDequant) tiling: {w}" for w in why] + [
        "[npuq] NpuqQuantize (ONNX npuq::Quantize) tiling: nvfp4 is two-level (a per-tensor scale besides the block "
        "scales); Quantize has no tensor-scale output"] + [
        f"[npuq] NpuqQuantize (ONNX npuq::Quantize) tiling: {w}" for w in why[1:]] + [
        "[npuq] NpuqDequantize (ONNX npuq::Dequantize) tiling: codes / scales widths do not match format, block and length"]
    # Dequantize: the widths formats.encode writes, else refused; the tensor scale is optional
    _, got = op_host(["tile NpuqDequantize 24 4:8,16;4:8,1;- format=mxfp4,block=32,length=32",
                      "tile NpuqDequantize 24 4:8,8;4:8,1;0:1 format=nvfp4,block=16,length=16"])
    fields = _struct_fields("DequantizeParams")
    first = dict(zip(fields, map(int, got[0].split()[4:])))
    assert got[0].split()[:4] == ["ok", "8", "0", str(_LIB_API_WORKSPACE)]
    assert (first["rows"], first["length"], first["block"], first["codeBytes"], first["scaleBytes"],
            first["hasTensorScale"], first["format"]) == (8, 32, 32, 16, 1, 0, F.names().index("mxfp4"))
    assert dict(zip(fields, map(int, got[1].split()[4:])))["hasTensorScale"] == 1


def test_op_host_quantize_tiling_runs(op_host, tmp_path):
    """TilingNpuqQuantize through CANN's context API (stubbed): QuantDequantParams field by field
    for every configuration npuq::Quantize takes, with the row split, tile rows and workspace of
    npuq_host::TileQuantize (the Quantize kernel's plan, checked by the common harness's `qz`
    above); batch schedule mode exactly for HiF8 scale="tensor", the one that reaches SyncAll."""
    configs = [(n, {}) for n in F.names() if n != "nvfp4"] + [
        ("hif8", {"scale": "row"}), ("hif8", {"scale": "tensor"}), ("int4sym", {"group": 32}),
        ("fp8e5m2", {"group": 5000}), ("mxfp4", {"rounding": "even", "scale_rule": "rceil"}),
        ("hif8", {"saturate": 1}), ("hif4", {"variant": "amct"})]
    shapes = [(8, 1024), (100, 14336), (3, 7), (5, 0)]
    fields = _struct_fields("QuantDequantParams")
    cases, want = [], []
    for name, opts in configs:
        for dtype, nbytes in ((0, 4), (1, 2), (27, 2)):
            for rows, cols in shapes:
                attrs = ",".join(f"{k}={v}" for k, v in {"format": name, **opts}.items())
                cases.append(f"tile NpuqQuantize 24 {_x(dtype, rows, cols)} {attrs}")
                want.append((name, opts, nbytes, rows, cols))
    _, got = op_host(cases)
    expect = _run(_common_harness(tmp_path), [f"qz {n} {o.get('group', 0)} {o.get('scale', 'none')} {b} {r} {c} 24"
                                              for n, o, b, r, c in want])
    for case, line, (name, opts, _, rows, cols), ref in zip(cases, got, want, expect):
        ok, block_dim, mode, workspace, *words = line.split()
        _, ref_block, ref_per_core, ref_tile, ref_ws, *_ = ref.split()
        assert ok == "ok" and len(words) == len(fields), case
        f = dict(zip(fields, map(int, words)))
        assert (f["rows"], f["cols"], f["format"]) == (rows, cols, F.names().index(name)), case
        assert (block_dim, str(f["rowsPerCore"]), str(f["tileRows"])) == (ref_block, ref_per_core, ref_tile), case
        assert int(workspace) == _LIB_API_WORKSPACE + int(ref_ws), case
        assert mode == ("1" if opts.get("scale") == "tensor" else "0"), case
        assert f["scale"] == ["none", "row", "tensor"].index(opts.get("scale", "none")), case
        assert (f["group"], f["rounding"], f["scaleRule"]) == (
            opts.get("group", 0), int(opts.get("rounding") == "even"), int(opts.get("scale_rule") == "rceil")), case
        assert (f["saturate"], f["variant"]) == (opts.get("saturate", 0), int(opts.get("variant") == "amct")), case


def test_op_host_infer_runs(op_host):
    """InferShape / InferDataType of op_host/*.cpp: QuantDequant keeps x; Dequantize gives
    float32 (rows, length); Quantize's packed widths are defs.packed_widths."""
    cases = ["infer NpuqQuantDequant 27:2,3,64 format=hif8", "infer NpuqQuantDequant 1:5 format=mxfp4",
             "infer NpuqDequantize 4:8,16;4:8,1;- format=mxfp4,block=32,length=32"]
    want = ["ok 2,3,64 27", "ok 5 1", "ok 8,32 0"]
    for name, length in (("mxfp4", 64), ("nvfp4", 100), ("hif4", 64), ("int8sym", 7), ("hif8", 33)):
        cases.append(f"infer NpuqQuantize 0:2,3,{length} format={name}")
        cw, sw = defs.packed_widths(F.get_format(name), length)
        want.append(f"ok 6,{cw};6,{sw} 4;4")
    _, got = op_host(cases)
    assert got == want
