"""Run an offline model (.om) on an Ascend NPU: pyACL, or ais_bench when pyACL is missing.

    with AclSession("model.om", device_id=0) as s:
        outputs = s.run(x, mask)          # numpy arrays in, numpy arrays out

    with open_session("model.om") as s:  # AclSession, else AisBenchSession, else RuntimeUnavailable
        ...

AclSession follows the pyACL sequence (shared/spec/ascend.md; Ascend/samples
python/common/acllite/acllite_model.py): acl.init -> acl.rt.set_device -> create_context ->
create_stream -> acl.mdl.load_from_file -> create_desc / get_desc -> per input and output:
get_*_size_by_index, acl.rt.malloc, create_dataset, create_data_buffer, add_dataset_buffer;
run: memcpy host->device (kind 1), acl.mdl.execute, get_cur_output_dims, memcpy device->host
(kind 2); close: everything released in reverse order of acquisition, acl.finalize last.
Every call's status is checked: a non-zero one raises AclError naming the call and the code.

Not supported yet: dynamic-gear models (the extra "ascend_mbatch_shape_data" input and
acl.mdl.set_dynamic_batch_size / set_input_dynamic_dims) and shape-range models
(aclmdlSetDatasetTensorDesc); such a model is refused with a message. Nothing here has run on
an NPU: the tests drive it with a fake `acl` module.
"""
from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path

import numpy as np

ACL_SUCCESS = 0
ACL_MEM_MALLOC_HUGE_FIRST = 0
ACL_MEMCPY_HOST_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_HOST = 1, 2
DYNAMIC_INPUT = "ascend_mbatch_shape_data"  # the input ATC adds for gear models


def _bf16():
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


# aclDataType -> numpy (acl_base.h aclDataType)
_ACL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.uint8, 6: np.int16, 7: np.uint16,
               8: np.uint32, 9: np.int64, 10: np.uint64, 11: np.float64, 12: np.bool_, 27: "bfloat16"}


def numpy_dtype(acl_type: int) -> np.dtype:
    kind = _ACL_DTYPES.get(int(acl_type))
    if kind is None:
        raise AclError("dtype", acl_type, f"aclDataType {acl_type} has no numpy equivalent here")
    return _bf16() if kind == "bfloat16" else np.dtype(kind)


class AclError(RuntimeError):
    """A pyACL call returned a non-zero status (or something pyACL-side is unusable)."""

    def __init__(self, call: str, code, detail: str = ""):
        self.call, self.code = call, code
        super().__init__(f"{call} failed with code {code}" + (f": {detail}" if detail else ""))


class RuntimeUnavailable(ImportError):
    """Neither pyACL nor ais_bench can be imported here."""


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _check(call: str, ret) -> None:
    if ret != ACL_SUCCESS:
        raise AclError(call, ret)


# aclrtFloatOverflowMode (CANN runtime docs): SATURATION = 0, INFNAN = 1 (IEEE 754, the 910B default)
OVERFLOW_SATURATION = 0


class AclSession:
    """One .om model loaded on one device, with its input and output buffers (see module doc)."""

    def __init__(self, om_path: str | os.PathLike, device_id: int = 0, acl=None):
        self.om_path = Path(om_path)
        if not self.om_path.is_file():
            raise FileNotFoundError(f"no offline model at {self.om_path}")
        if acl is None:
            acl = _import("acl")
            if acl is None:
                raise RuntimeUnavailable("pyACL is not importable (import acl failed): install CANN and source "
                                         "atc_scripts/env.sh")
        self.acl = acl
        self.device_id = int(device_id)
        self._release: list[tuple[str, object]] = []  # (call name, zero-argument releaser), in acquisition order
        self.closed = False
        try:
            self._open()
        except BaseException:
            self._close(raise_errors=False)
            raise

    # -------------------------------------------------------------- acquisition

    def _acquire(self, call: str, result, release_call: str | None = None, release=None):
        """Check a call's status (`result` is ret, or (value, ret)); remember `release`."""
        value, ret = (None, result) if not isinstance(result, tuple) else result
        _check(call, ret)
        if release_call is not None:
            self._release.append((release_call, release))
        return value

    def _open(self) -> None:
        acl = self.acl
        self._acquire("acl.init", acl.init(), "acl.finalize", lambda: acl.finalize())
        device = self.device_id
        self._acquire("acl.rt.set_device", acl.rt.set_device(device), "acl.rt.reset_device",
                      lambda: acl.rt.reset_device(device))
        # a process-wide setting: the npuq kernels follow onnx_npuq.formats in Inf/NaN mode only
        mode = self._acquire("acl.rt.get_device_sat_mode", acl.rt.get_device_sat_mode())
        self.saturation = mode == OVERFLOW_SATURATION
        if self.saturation:
            warnings.warn(f"device {device} computes in saturation mode (Inf -> max, NaN -> 0; the only mode of "
                          "Atlas inference cards): results that onnx_npuq.formats gives as NaN or Inf (non-finite "
                          "inputs, HiF8 overflow) come out finite; finite results are unchanged", RuntimeWarning,
                          stacklevel=3)
        ctx = self._acquire("acl.rt.create_context", acl.rt.create_context(device))
        self._release.append(("acl.rt.destroy_context", lambda: acl.rt.destroy_context(ctx)))
        stream = self._acquire("acl.rt.create_stream", acl.rt.create_stream())
        self._release.append(("acl.rt.destroy_stream", lambda: acl.rt.destroy_stream(stream)))
        self.context, self.stream = ctx, stream
        model_id = self._acquire("acl.mdl.load_from_file", acl.mdl.load_from_file(str(self.om_path)))
        self._release.append(("acl.mdl.unload", lambda: acl.mdl.unload(model_id)))
        self.model_id = model_id
        desc = acl.mdl.create_desc()
        if desc is None:
            raise AclError("acl.mdl.create_desc", None, "returned no description")
        self._release.append(("acl.mdl.destroy_desc", lambda: acl.mdl.destroy_desc(desc)))
        self.desc = desc
        self._acquire("acl.mdl.get_desc", acl.mdl.get_desc(desc, model_id))

        self.input_names, self.output_names = [], []
        n_in, n_out = acl.mdl.get_num_inputs(desc), acl.mdl.get_num_outputs(desc)
        for i in range(n_in):
            self.input_names.append(acl.mdl.get_input_name_by_index(desc, i))
        for i in range(n_out):
            self.output_names.append(acl.mdl.get_output_name_by_index(desc, i))
        if DYNAMIC_INPUT in self.input_names:
            raise AclError("acl.mdl.get_input_name_by_index", ACL_SUCCESS,
                           f"{self.om_path} has dynamic gears ({DYNAMIC_INPUT}), which AclSession does not drive yet")
        self.input_dtypes = [numpy_dtype(acl.mdl.get_input_data_type(desc, i)) for i in range(n_in)]
        self.output_dtypes = [numpy_dtype(acl.mdl.get_output_data_type(desc, i)) for i in range(n_out)]
        self.input_shapes = [self._dims("acl.mdl.get_input_dims", acl.mdl.get_input_dims(desc, i)) for i in range(n_in)]
        self.input_sizes = [acl.mdl.get_input_size_by_index(desc, i) for i in range(n_in)]
        self.output_sizes = [acl.mdl.get_output_size_by_index(desc, i) for i in range(n_out)]
        self.input_dataset, self.input_buffers = self._dataset(self.input_sizes, "input")
        self.output_dataset, self.output_buffers = self._dataset(self.output_sizes, "output")

    def _dims(self, call: str, result) -> tuple[int, ...]:
        dims, ret = result
        _check(call, ret)
        return tuple(int(d) for d in dims["dims"])

    def _dataset(self, sizes, kind: str):
        acl = self.acl
        dataset = acl.mdl.create_dataset()
        if dataset is None:
            raise AclError("acl.mdl.create_dataset", None, f"no {kind} dataset")
        self._release.append(("acl.mdl.destroy_dataset", lambda: acl.mdl.destroy_dataset(dataset)))
        buffers = []
        for size in sizes:
            buf = self._acquire("acl.rt.malloc", acl.rt.malloc(size, ACL_MEM_MALLOC_HUGE_FIRST))
            self._release.append(("acl.rt.free", lambda buf=buf: acl.rt.free(buf)))
            data = acl.create_data_buffer(buf, size)
            if data is None:
                raise AclError("acl.create_data_buffer", None, f"no data buffer for a {kind} of {size} bytes")
            self._release.append(("acl.destroy_data_buffer", lambda data=data: acl.destroy_data_buffer(data)))
            self._acquire("acl.mdl.add_dataset_buffer", acl.mdl.add_dataset_buffer(dataset, data))
            buffers.append(buf)
        return dataset, buffers

    # -------------------------------------------------------------- running

    def _host_ptr(self, data: bytes):
        util = self.acl.util
        return util.bytes_to_ptr(data)

    def run(self, *arrays) -> list[np.ndarray]:
        """Inputs in model order (numpy arrays of the model's dtypes and shapes) -> outputs."""
        if self.closed:
            raise AclError("run", None, "the session is closed")
        acl = self.acl
        if len(arrays) != len(self.input_names):
            raise ValueError(f"{self.om_path.name} takes {len(self.input_names)} input(s) "
                             f"({', '.join(self.input_names)}), got {len(arrays)}")
        keep = []  # host copies stay alive until the copies are done
        for i, a in enumerate(arrays):
            a = np.ascontiguousarray(np.asarray(a))
            name, want = self.input_names[i], self.input_dtypes[i]
            if a.dtype != want:
                raise ValueError(f"input {name}: dtype {a.dtype}, the model takes {want}")
            fixed = all(d >= 0 for d in self.input_shapes[i])
            if fixed and tuple(a.shape) != self.input_shapes[i]:
                raise ValueError(f"input {name}: shape {tuple(a.shape)}, the model takes {self.input_shapes[i]}")
            if a.nbytes != self.input_sizes[i]:
                raise ValueError(f"input {name}: {a.nbytes} bytes, the model takes {self.input_sizes[i]}")
            data = a.tobytes()
            keep.append(data)
            ptr = self._host_ptr(data)
            _check("acl.rt.memcpy", acl.rt.memcpy(self.input_buffers[i], a.nbytes, ptr, a.nbytes,
                                                  ACL_MEMCPY_HOST_TO_DEVICE))
        _check("acl.mdl.execute", acl.mdl.execute(self.model_id, self.input_dataset, self.output_dataset))
        outputs = []
        for i, buf in enumerate(self.output_buffers):
            shape = self._dims("acl.mdl.get_cur_output_dims", acl.mdl.get_cur_output_dims(self.desc, i))
            dtype = self.output_dtypes[i]
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > self.output_sizes[i]:
                raise AclError("acl.mdl.get_cur_output_dims", ACL_SUCCESS,
                               f"output {self.output_names[i]} {shape} needs {nbytes} bytes, its buffer has "
                               f"{self.output_sizes[i]}")
            host = bytes(nbytes)
            _check("acl.rt.memcpy", acl.rt.memcpy(self._host_ptr(host), nbytes, buf, nbytes,
                                                  ACL_MEMCPY_DEVICE_TO_HOST))
            outputs.append(np.frombuffer(host, dtype=dtype, count=nbytes // dtype.itemsize).reshape(shape).copy())
        del keep
        return outputs

    # -------------------------------------------------------------- releasing

    def _close(self, raise_errors: bool) -> None:
        first = None
        while self._release:
            call, release = self._release.pop()
            try:
                ret = release()
            except Exception as err:  # noqa: BLE001  keep releasing the rest, raise the first at the end
                first = first or AclError(call, None, str(err))
                continue
            if isinstance(ret, tuple):  # some pyACL calls return (value, ret)
                ret = ret[-1]
            if ret not in (None, ACL_SUCCESS) and first is None:
                first = AclError(call, ret)
        self.closed = True
        if first is not None and raise_errors:
            raise first

    def close(self) -> None:
        """Release everything in reverse order of acquisition (then acl.finalize); the first
        failing release is raised after all have been tried."""
        if not self.closed:
            self._close(raise_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        if not getattr(self, "closed", True):
            try:
                self._close(raise_errors=False)
            except Exception:  # noqa: BLE001, S110  never raise from a finalizer
                pass


class AisBenchSession:
    """The same interface over ais_bench's InferSession(device_id, om_path) (Ascend/tools
    ais-bench: infer(feeds), get_inputs(), get_outputs(), free_resource())."""

    def __init__(self, om_path: str | os.PathLike, device_id: int = 0, interface=None):
        self.om_path = Path(om_path)
        if not self.om_path.is_file():
            raise FileNotFoundError(f"no offline model at {self.om_path}")
        if interface is None:
            interface = _import("ais_bench.infer.interface")
            if interface is None:
                raise RuntimeUnavailable("ais_bench is not importable (from ais_bench.infer.interface import "
                                         "InferSession failed)")
        self.session = interface.InferSession(int(device_id), str(self.om_path))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.closed = False

    def run(self, *arrays) -> list[np.ndarray]:
        if len(arrays) != len(self.input_names):
            raise ValueError(f"{self.om_path.name} takes {len(self.input_names)} input(s) "
                             f"({', '.join(self.input_names)}), got {len(arrays)}")
        return [np.asarray(o) for o in self.session.infer([np.ascontiguousarray(a) for a in arrays])]

    def close(self) -> None:
        if not self.closed:
            free = getattr(self.session, "free_resource", None)
            if free is not None:
                free()
            self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def available_backends() -> list[str]:
    """'acl' and / or 'ais_bench', whichever imports here."""
    out = []
    if _import("acl") is not None:
        out.append("acl")
    if _import("ais_bench.infer.interface") is not None:
        out.append("ais_bench")
    return out


def open_session(om_path: str | os.PathLike, device_id: int = 0, backend: str = "auto"):
    """AclSession (pyACL), else AisBenchSession; RuntimeUnavailable when neither imports."""
    if backend not in ("auto", "acl", "ais_bench"):
        raise ValueError(f"backend must be auto, acl or ais_bench, got {backend!r}")
    if not Path(om_path).is_file():
        raise FileNotFoundError(f"no offline model at {om_path}")
    if backend in ("auto", "acl"):
        acl = _import("acl")
        if acl is not None:
            return AclSession(om_path, device_id, acl=acl)
        if backend == "acl":
            raise RuntimeUnavailable("pyACL is not importable (import acl failed): install CANN's pyACL and "
                                     "source atc_scripts/env.sh")
    interface = _import("ais_bench.infer.interface")
    if interface is not None:
        return AisBenchSession(om_path, device_id, interface=interface)
    if backend == "ais_bench":
        raise RuntimeUnavailable("ais_bench is not importable: install Ascend/tools ais_bench (and aclruntime)")
    raise RuntimeUnavailable("neither pyACL (import acl) nor ais_bench (ais_bench.infer.interface) is importable: "
                             "run on a machine with CANN installed and atc_scripts/env.sh sourced")
