"""onnx_npuq.runtime.acl against a FAKE `acl` module (FakeAcl below).

FakeAcl is a test double, not pyACL: it records the calls AclSession makes, keeps "device
memory" in host ctypes buffers, and "executes" the model with a Python function. These tests
check the call sequence of shared/spec/ascend.md (and Ascend/samples acllite_model.py), the
reverse-order release, status-code checking and dtype / shape handling. Nothing here ran on an
NPU or with CANN installed.
"""
from __future__ import annotations

import ctypes
import sys
import types
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from onnx_npuq.runtime import acl as A

FAIL = 507899  # an arbitrary non-zero status
F32, F16, I8, I32, U8, I64, BOOL, BF16 = 0, 1, 2, 3, 4, 9, 12, 27

# what AclSession acquires, in order, for a model with one input and one output; and the
# releases, which must be exactly the reverse
OPEN = ["acl.init", "acl.rt.set_device", "acl.rt.create_context", "acl.rt.create_stream", "acl.mdl.load_from_file",
        "acl.mdl.create_desc", "acl.mdl.get_desc",
        "acl.mdl.create_dataset", "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer",
        "acl.mdl.create_dataset", "acl.rt.malloc", "acl.create_data_buffer", "acl.mdl.add_dataset_buffer"]
RELEASE = ["acl.destroy_data_buffer", "acl.rt.free", "acl.mdl.destroy_dataset",
           "acl.destroy_data_buffer", "acl.rt.free", "acl.mdl.destroy_dataset",
           "acl.mdl.destroy_desc", "acl.mdl.unload", "acl.rt.destroy_stream", "acl.rt.destroy_context",
           "acl.rt.reset_device", "acl.finalize"]
QUERIES = {"acl.rt.get_device_sat_mode", "acl.mdl.get_num_inputs", "acl.mdl.get_num_outputs", "acl.mdl.get_input_name_by_index",
           "acl.mdl.get_output_name_by_index", "acl.mdl.get_input_data_type", "acl.mdl.get_output_data_type",
           "acl.mdl.get_input_dims", "acl.mdl.get_input_size_by_index", "acl.mdl.get_output_size_by_index"}


def _address(data: bytes) -> int:
    """Where a bytes object keeps its data (what pyACL's acl.util.bytes_to_ptr returns)."""
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value


class FakeAcl(types.ModuleType):
    """A FAKE pyACL for tests (see module doc). inputs / outputs: [(name, aclDataType, dims)];
    compute(list of input arrays) -> list of output arrays; fail: call names that return FAIL."""

    def __init__(self, inputs, outputs, compute, fail=(), release_fail=(), cur_dims=None):
        super().__init__("acl")
        self.inputs, self.outputs, self.compute = inputs, outputs, compute
        self.fail, self.release_fail = set(fail), set(release_fail)
        self.cur_dims = cur_dims  # output shapes get_cur_output_dims reports (default: computed)
        self.calls: list[tuple[str, tuple]] = []
        self.memory: dict[int, ctypes.Array] = {}
        self.memcpy_kinds: list[int] = []
        self.last_outputs = None
        self.rt = types.SimpleNamespace()
        self.mdl = types.SimpleNamespace()
        self.util = types.SimpleNamespace(bytes_to_ptr=lambda b: self._call("acl.util.bytes_to_ptr", b,
                                                                            value=_address(b), status=False))
        self.sat_mode = 1  # aclrtFloatOverflowMode: 1 Inf/NaN (910B's default), 0 saturation
        for name in ("set_device", "reset_device", "create_context", "destroy_context", "create_stream",
                     "destroy_stream", "malloc", "free", "memcpy", "get_device_sat_mode"):
            setattr(self.rt, name, getattr(self, f"_rt_{name}"))
        for name in ("load_from_file", "unload", "create_desc", "get_desc", "destroy_desc", "get_num_inputs",
                     "get_num_outputs", "get_input_name_by_index", "get_output_name_by_index",
                     "get_input_data_type", "get_output_data_type", "get_input_dims", "get_cur_output_dims",
                     "get_input_size_by_index", "get_output_size_by_index", "create_dataset", "destroy_dataset",
                     "add_dataset_buffer", "execute"):
            setattr(self.mdl, name, getattr(self, f"_mdl_{name}"))

    # -------------------------------------------------------------- plumbing

    def names(self) -> list[str]:
        return [c for c, _ in self.calls]

    def _call(self, name, *args, value=None, status=True, pair=False):
        self.calls.append((name, args))
        failing = name in self.fail or name in self.release_fail
        ret = FAIL if failing else 0
        if pair:
            return value, ret
        if status:
            return ret
        return value

    @staticmethod
    def _nbytes(acl_type, dims) -> int:
        return int(np.prod(dims, dtype=np.int64)) * A.numpy_dtype(acl_type).itemsize

    # -------------------------------------------------------------- acl

    def init(self):
        return self._call("acl.init")

    def finalize(self):
        return self._call("acl.finalize")

    def create_data_buffer(self, ptr, size):
        return self._call("acl.create_data_buffer", ptr, size, value=("buffer", ptr, size), status=False)

    def destroy_data_buffer(self, buf):
        return self._call("acl.destroy_data_buffer", buf)

    # -------------------------------------------------------------- acl.rt

    def _rt_set_device(self, device):
        return self._call("acl.rt.set_device", device)

    def _rt_get_device_sat_mode(self):
        return self._call("acl.rt.get_device_sat_mode", value=self.sat_mode, pair=True)

    def _rt_reset_device(self, device):
        return self._call("acl.rt.reset_device", device)

    def _rt_create_context(self, device):
        return self._call("acl.rt.create_context", device, value="context", pair=True)

    def _rt_destroy_context(self, ctx):
        return self._call("acl.rt.destroy_context", ctx)

    def _rt_create_stream(self):
        return self._call("acl.rt.create_stream", value="stream", pair=True)

    def _rt_destroy_stream(self, stream):
        return self._call("acl.rt.destroy_stream", stream)

    def _rt_malloc(self, size, policy):
        buf = ctypes.create_string_buffer(max(int(size), 1))
        self.memory[ctypes.addressof(buf)] = buf
        return self._call("acl.rt.malloc", size, policy, value=ctypes.addressof(buf), pair=True)

    def _rt_free(self, ptr):
        self.memory.pop(ptr, None)
        return self._call("acl.rt.free", ptr)

    def _rt_memcpy(self, dst, dst_max, src, count, kind):
        self.memcpy_kinds.append(kind)
        ret = self._call("acl.rt.memcpy", dst, dst_max, src, count, kind)
        if ret == 0:
            assert count <= dst_max
            ctypes.memmove(dst, src, count)
        return ret

    # -------------------------------------------------------------- acl.mdl

    def _mdl_load_from_file(self, path):
        return self._call("acl.mdl.load_from_file", path, value=7, pair=True)

    def _mdl_unload(self, model_id):
        return self._call("acl.mdl.unload", model_id)

    def _mdl_create_desc(self):
        return self._call("acl.mdl.create_desc", value="desc", status=False)

    def _mdl_get_desc(self, desc, model_id):
        return self._call("acl.mdl.get_desc", desc, model_id)

    def _mdl_destroy_desc(self, desc):
        return self._call("acl.mdl.destroy_desc", desc)

    def _mdl_get_num_inputs(self, desc):
        return self._call("acl.mdl.get_num_inputs", desc, value=len(self.inputs), status=False)

    def _mdl_get_num_outputs(self, desc):
        return self._call("acl.mdl.get_num_outputs", desc, value=len(self.outputs), status=False)

    def _mdl_get_input_name_by_index(self, desc, i):
        return self._call("acl.mdl.get_input_name_by_index", desc, i, value=self.inputs[i][0], status=False)

    def _mdl_get_output_name_by_index(self, desc, i):
        return self._call("acl.mdl.get_output_name_by_index", desc, i, value=self.outputs[i][0], status=False)

    def _mdl_get_input_data_type(self, desc, i):
        return self._call("acl.mdl.get_input_data_type", desc, i, value=self.inputs[i][1], status=False)

    def _mdl_get_output_data_type(self, desc, i):
        return self._call("acl.mdl.get_output_data_type", desc, i, value=self.outputs[i][1], status=False)

    def _mdl_get_input_dims(self, desc, i):
        name, _, dims = self.inputs[i]
        return self._call("acl.mdl.get_input_dims", desc, i,
                          value={"name": name, "dimCount": len(dims), "dims": list(dims)}, pair=True)

    def _mdl_get_cur_output_dims(self, desc, i):
        name, _, dims = self.outputs[i]
        if self.cur_dims is not None:
            dims = self.cur_dims[i]
        elif self.last_outputs is not None:
            dims = list(self.last_outputs[i].shape)
        return self._call("acl.mdl.get_cur_output_dims", desc, i,
                          value={"name": name, "dimCount": len(dims), "dims": list(dims)}, pair=True)

    def _mdl_get_input_size_by_index(self, desc, i):
        _, t, dims = self.inputs[i]
        return self._call("acl.mdl.get_input_size_by_index", desc, i, value=self._nbytes(t, dims), status=False)

    def _mdl_get_output_size_by_index(self, desc, i):
        _, t, dims = self.outputs[i]
        return self._call("acl.mdl.get_output_size_by_index", desc, i, value=self._nbytes(t, dims), status=False)

    def _mdl_create_dataset(self):
        self.datasets = getattr(self, "datasets", []) + [[]]
        return self._call("acl.mdl.create_dataset", value=("dataset", len(self.datasets) - 1), status=False)

    def _mdl_destroy_dataset(self, ds):
        return self._call("acl.mdl.destroy_dataset", ds)

    def _mdl_add_dataset_buffer(self, ds, buf):
        self.datasets[ds[1]].append(buf)
        return self._call("acl.mdl.add_dataset_buffer", ds, buf, value=ds, pair=True)

    def _mdl_execute(self, model_id, in_ds, out_ds):
        ret = self._call("acl.mdl.execute", model_id, in_ds, out_ds)
        if ret != 0:
            return ret
        arrays = []
        for (_, t, dims), (_, ptr, size) in zip(self.inputs, self.datasets[in_ds[1]]):
            raw = ctypes.string_at(ptr, size)
            arrays.append(np.frombuffer(raw, dtype=A.numpy_dtype(t)).reshape(dims))
        outs = [np.ascontiguousarray(o) for o in self.compute(arrays)]
        self.last_outputs = outs
        for (_, t, _), (_, ptr, size), o in zip(self.outputs, self.datasets[out_ds[1]], outs):
            assert o.dtype == A.numpy_dtype(t) and o.nbytes <= size
            data = o.tobytes()
            ctypes.memmove(ptr, data, len(data))
        return ret


def _affine():
    """x (2, 3) float32 -> y = 2x + 1 (2, 3) float32."""
    return FakeAcl([("x", F32, [2, 3])], [("y", F32, [2, 3])], lambda xs: [xs[0] * 2 + 1])


@pytest.fixture
def om(tmp_path) -> Path:
    path = tmp_path / "model.om"
    path.write_bytes(b"not really an offline model: FakeAcl never reads it")
    return path


# ---------------------------------------------------------------- the call sequence


def test_open_follows_the_pyacl_sequence(om):
    fake = _affine()
    s = A.AclSession(om, device_id=3, acl=fake)
    acquisitions = [c for c in fake.names() if c not in QUERIES]
    assert acquisitions == OPEN
    assert fake.calls[1] == ("acl.rt.set_device", (3,))
    assert fake.calls[2] == ("acl.rt.get_device_sat_mode", ())
    assert fake.calls[3] == ("acl.rt.create_context", (3,))
    assert ("acl.mdl.load_from_file", (str(om),)) in fake.calls
    assert s.input_names == ["x"] and s.output_names == ["y"]
    assert s.input_dtypes == [np.dtype(np.float32)] and s.input_shapes == [(2, 3)] and s.input_sizes == [24]
    s.close()


def test_the_overflow_mode_is_read_and_saturation_is_said(om):
    """The npuq kernels follow onnx_npuq.formats in Inf/NaN mode (910B's default); saturation
    (Atlas inference cards' only mode) turns their NaN / Inf results finite: a warning."""
    fake = _affine()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = A.AclSession(om, acl=fake)
    assert not s.saturation and fake.names()[2] == "acl.rt.get_device_sat_mode"
    s.close()
    fake = _affine()
    fake.sat_mode = 0
    with pytest.warns(RuntimeWarning, match=r"device 0 computes in saturation mode \(Inf -> max, NaN -> 0"):
        s = A.AclSession(om, acl=fake)
    assert s.saturation
    s.close()
    fake = _affine()
    fake.fail = {"acl.rt.get_device_sat_mode"}
    with pytest.raises(A.AclError, match="acl.rt.get_device_sat_mode failed"):
        A.AclSession(om, acl=fake)
    assert fake.names()[-2:] == ["acl.rt.reset_device", "acl.finalize"]


def test_run_copies_in_executes_copies_out(om):
    fake = _affine()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with A.AclSession(om, acl=fake) as s:
        before = len(fake.calls)
        (y,) = s.run(x)
        during = [c for c in fake.names()[before:] if c != "acl.util.bytes_to_ptr"]
    assert during == ["acl.rt.memcpy", "acl.mdl.execute", "acl.mdl.get_cur_output_dims", "acl.rt.memcpy"]
    assert fake.memcpy_kinds == [A.ACL_MEMCPY_HOST_TO_DEVICE, A.ACL_MEMCPY_DEVICE_TO_HOST]
    execute = next(args for name, args in fake.calls if name == "acl.mdl.execute")
    assert execute[0] == 7 and execute[1] == ("dataset", 0) and execute[2] == ("dataset", 1)
    np.testing.assert_array_equal(y, x * 2 + 1)
    assert y.dtype == np.float32 and y.flags.writeable


def test_close_releases_in_reverse_then_finalizes(om):
    fake = _affine()
    with A.AclSession(om, acl=fake) as s:
        s.run(np.zeros((2, 3), np.float32))
        start = len(fake.calls)
    released = fake.names()[start:]
    assert released == RELEASE
    # every buffer freed is one malloc'd; every data buffer destroyed is one created
    mallocs = [args for name, args in fake.calls if name == "acl.rt.malloc"]
    frees = [args for name, args in fake.calls if name == "acl.rt.free"]
    assert len(mallocs) == len(frees) == 2 and not fake.memory
    assert s.closed
    s.close()  # idempotent
    assert fake.names()[start:] == RELEASE


def test_several_inputs_and_outputs_release_exactly_in_reverse(om):
    fake = FakeAcl([("a", F32, [4]), ("b", I32, [4])], [("s", F32, [4]), ("n", I64, [1])],
                   lambda xs: [xs[0] + xs[1].astype(np.float32), np.array([xs[1].sum()], np.int64)])
    s = A.AclSession(om, acl=fake)
    opened = [c for c in fake.names() if c not in QUERIES]
    start = len(fake.calls)
    s.close()
    released = fake.names()[start:]
    undo = {"acl.init": "acl.finalize", "acl.rt.set_device": "acl.rt.reset_device",
            "acl.rt.create_context": "acl.rt.destroy_context", "acl.rt.create_stream": "acl.rt.destroy_stream",
            "acl.mdl.load_from_file": "acl.mdl.unload", "acl.mdl.create_desc": "acl.mdl.destroy_desc",
            "acl.mdl.create_dataset": "acl.mdl.destroy_dataset", "acl.rt.malloc": "acl.rt.free",
            "acl.create_data_buffer": "acl.destroy_data_buffer"}
    expected = [undo[c] for c in reversed(opened) if c in undo]
    assert released == expected


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("failing", [c for c in dict.fromkeys(OPEN) if c not in ("acl.mdl.create_desc",
                                                                                  "acl.create_data_buffer",
                                                                                  "acl.mdl.create_dataset")])
def test_a_failing_call_is_named_and_what_was_acquired_is_released(om, failing):
    fake = _affine()
    fake.fail = {failing}
    with pytest.raises(A.AclError) as info:
        A.AclSession(om, acl=fake)
    assert info.value.call == failing and info.value.code == FAIL
    assert str(info.value) == f"{failing} failed with code {FAIL}"
    names = fake.names()
    at = names.index(failing)
    released = names[at + 1:]
    opened = [c for c in names[:at] if c not in QUERIES]
    # acl.init failing: nothing to undo; later: finalize is the last release, after reset_device
    if failing == "acl.init":
        assert released == []
    else:
        assert released[-1] == "acl.finalize"
        assert len(released) == sum(c in ("acl.init", "acl.rt.set_device", "acl.rt.create_context",
                                           "acl.rt.create_stream", "acl.mdl.load_from_file",
                                           "acl.mdl.create_desc", "acl.mdl.create_dataset", "acl.rt.malloc",
                                           "acl.create_data_buffer") for c in opened)


@pytest.mark.parametrize("failing", ["acl.rt.memcpy", "acl.mdl.execute", "acl.mdl.get_cur_output_dims"])
def test_failures_while_running_name_the_call(om, failing):
    fake = _affine()
    with A.AclSession(om, acl=fake) as s:
        fake.fail = {failing}
        with pytest.raises(A.AclError, match=f"^{failing} failed with code {FAIL}$"):
            s.run(np.zeros((2, 3), np.float32))
        fake.fail = set()
    assert fake.names()[-1] == "acl.finalize"


def test_a_failing_release_is_raised_after_everything_else_is_released(om):
    fake = _affine()
    s = A.AclSession(om, acl=fake)
    start = len(fake.calls)
    fake.release_fail = {"acl.rt.destroy_stream"}
    with pytest.raises(A.AclError, match="acl.rt.destroy_stream failed"):
        s.close()
    assert fake.names()[start:] == RELEASE  # the rest was still released
    assert s.closed


def test_missing_model_file_and_missing_pyacl(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        A.AclSession(tmp_path / "nope.om", acl=_affine())
    (tmp_path / "m.om").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "acl", None)  # `import acl` raises ImportError
    with pytest.raises(A.RuntimeUnavailable, match="pyACL is not importable"):
        A.AclSession(tmp_path / "m.om")


# ---------------------------------------------------------------- dtypes and shapes


def test_input_checks_name_the_input(om):
    with A.AclSession(om, acl=_affine()) as s:
        with pytest.raises(ValueError, match="takes 1 input"):
            s.run()
        with pytest.raises(ValueError, match="input x: dtype float64, the model takes float32"):
            s.run(np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"input x: shape \(3, 2\), the model takes \(2, 3\)"):
            s.run(np.zeros((3, 2), np.float32))
        (y,) = s.run(np.asfortranarray(np.ones((2, 3), np.float32)))  # made contiguous
        np.testing.assert_array_equal(y, np.full((2, 3), 3, np.float32))


@pytest.mark.parametrize("acl_type, dtype", [(F16, np.float16), (I8, np.int8), (U8, np.uint8), (I64, np.int64),
                                             (BOOL, np.bool_), (BF16, ml_dtypes.bfloat16)])
def test_dtypes_round_trip(om, acl_type, dtype):
    fake = FakeAcl([("x", acl_type, [5])], [("y", acl_type, [5])], lambda xs: [xs[0][::-1].copy()])
    x = np.array([0, 1, 0, 1, 1]).astype(dtype)
    with A.AclSession(om, acl=fake) as s:
        (y,) = s.run(x)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.astype(np.float32), x[::-1].astype(np.float32))


def test_output_shape_comes_from_get_cur_output_dims(om):
    # the description reserves (4, 8); this run produced (2, 8)
    fake = FakeAcl([("x", F32, [2, 8])], [("y", F32, [4, 8])], lambda xs: [xs[0] + 1])
    with A.AclSession(om, acl=fake) as s:
        (y,) = s.run(np.zeros((2, 8), np.float32))
    assert y.shape == (2, 8)
    fake = FakeAcl([("x", F32, [2, 8])], [("y", F32, [2, 8])], lambda xs: [xs[0]], cur_dims=[[4, 8]])
    with A.AclSession(om, acl=fake) as s, pytest.raises(A.AclError, match="needs 128 bytes, its buffer has 64"):
        s.run(np.zeros((2, 8), np.float32))


def test_unknown_acl_dtype_and_gear_models_are_refused(om):
    with pytest.raises(A.AclError, match="aclDataType 99"):
        A.AclSession(om, acl=FakeAcl([("x", 99, [1])], [("y", F32, [1])], lambda xs: xs))
    fake = FakeAcl([("x", F32, [1, 4]), (A.DYNAMIC_INPUT, I64, [1])], [("y", F32, [1, 4])], lambda xs: xs[:1])
    with pytest.raises(A.AclError, match="dynamic gears"):
        A.AclSession(om, acl=fake)
    assert fake.names()[-1] == "acl.finalize"


# ---------------------------------------------------------------- choosing a backend


class _FakeInferSession:
    """A FAKE ais_bench InferSession (test double)."""

    def __init__(self, device_id, model_path):
        self.device_id, self.model_path, self.freed = device_id, model_path, False

    def get_inputs(self):
        return [types.SimpleNamespace(name="x")]

    def get_outputs(self):
        return [types.SimpleNamespace(name="y")]

    def infer(self, feeds):
        return [feeds[0] * 3]

    def free_resource(self):
        self.freed = True


def _fake_ais_bench(monkeypatch):
    interface = types.ModuleType("ais_bench.infer.interface")
    interface.InferSession = _FakeInferSession
    pkg, infer = types.ModuleType("ais_bench"), types.ModuleType("ais_bench.infer")
    pkg.infer, infer.interface = infer, interface
    for name, mod in (("ais_bench", pkg), ("ais_bench.infer", infer), ("ais_bench.infer.interface", interface)):
        monkeypatch.setitem(sys.modules, name, mod)


def test_open_session_prefers_pyacl_then_ais_bench_then_says_what_is_missing(om, monkeypatch):
    monkeypatch.setitem(sys.modules, "acl", None)
    monkeypatch.setitem(sys.modules, "ais_bench", None)
    monkeypatch.setitem(sys.modules, "ais_bench.infer", None)
    monkeypatch.setitem(sys.modules, "ais_bench.infer.interface", None)
    with pytest.raises(A.RuntimeUnavailable, match="neither pyACL .* nor ais_bench"):
        A.open_session(om)
    assert A.available_backends() == []

    _fake_ais_bench(monkeypatch)
    with A.open_session(om, device_id=1) as s:
        assert isinstance(s, A.AisBenchSession)
        assert s.session.device_id == 1 and s.session.model_path == str(om)
        (y,) = s.run(np.ones(2, np.float32))
        np.testing.assert_array_equal(y, np.full(2, 3, np.float32))
    assert s.session.freed
    with pytest.raises(A.RuntimeUnavailable, match="pyACL is not importable"):
        A.open_session(om, backend="acl")

    monkeypatch.setitem(sys.modules, "acl", _affine())
    with A.open_session(om) as s:
        assert isinstance(s, A.AclSession)
    assert A.available_backends() == ["acl", "ais_bench"]
    with pytest.raises(ValueError, match="backend"):
        A.open_session(om, backend="cuda")
