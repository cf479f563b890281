"""Large CPU outputs: on transparent huge pages, and reused once nothing holds them.

A fresh 64 MiB output costs the kernel's page faults and zero-filling of its pages:
1.7-2.7x the time of copying 64 MiB on the 2-core VM, as much as the quantizer that
writes it. So the last few large outputs are remembered; when torch's reference counts
show that only this pool holds one (no tensor, view, numpy array or storage object of
the caller's, and no weakref to its storage object), the next output of the same byte
size takes its memory. The pool never holds more than POOL_BYTES; `release_buffers()`
returns them to the system. (The counts are read one after another: a second thread that
turns its only hold on a dropped output's storage object from a weakref into a reference
and back between two of those reads could go unseen. Giving each output a storage of its
own over the pool's memory would close that, at the price of unresizable outputs and more
page faults while the heap settles; not done.)

A kernel's own temporaries (a few MiB per chunk) come from malloc. glibc maps each block
above its mmap threshold afresh, and that threshold starts at 128 KiB and rises only to
the largest mapped block freed so far (at most 32 MiB; the heap then keeps twice that
before trimming). In a process that has not yet freed such a block, every chunk's
temporaries are mapped and zero-filled again: 4000-16000 page faults a call, 2-3x the
kernel's time. `_settle_malloc` frees one 30 MiB block once, which puts the threshold
where any process that has loaded a model has it already.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
import weakref

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

HUGE_PAGE = 1 << 21
MIN_BYTES = 2 * HUGE_PAGE  # smaller outputs come from malloc's heap, already warm
POOL_BYTES = 256 << 20
_MADV_HUGEPAGE = 14  # linux/mman.h

_madvise = None
_malloc_settled = False
_pool: list = []  # torch.UntypedStorage, oldest first
_lock = threading.Lock()
if hasattr(os, "register_at_fork"):  # a child forked while another thread held it would wait forever
    os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release,
                        after_in_child=_lock.release)
_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _libc_madvise():
    global _madvise
    if _madvise is None:
        _madvise = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int
                _madvise = fn
            except (OSError, AttributeError):
                pass
    return _madvise


def _advise_huge(storage) -> None:
    """torch does this itself only when THP_MEM_ALLOC_ENABLE=1 was set before its first
    allocation, which an imported library cannot rely on. Advice only."""
    if madvise := _libc_madvise():
        ptr, nbytes = storage.data_ptr(), storage.nbytes()
        start = -(-ptr // HUGE_PAGE) * HUGE_PAGE
        end = (ptr + nbytes) // HUGE_PAGE * HUGE_PAGE
        if end > start:
            madvise(start, end - start, _MADV_HUGEPAGE)


def _settle_malloc() -> None:
    global _malloc_settled
    if not _malloc_settled:
        _malloc_settled = True
        if _glibc():
            torch.empty(30 << 20, dtype=torch.uint8, device="cpu")  # mapped, then freed: see above


def _glibc() -> bool:
    # what platform.libc_ver() asks first, without its fallback of scanning the interpreter's binary
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or not glibc (macOS)
        return False


def _python_refs(pool: list, i: int) -> int:
    return sys.getrefcount(pool[i])


# the Python references of a storage held by a list only, counted the way _unused counts
# them (the count differs between Python versions)
_UNHELD = _python_refs([torch.UntypedStorage(0)], 0)


def _unused(i: int) -> bool:
    # one C++ owner (the pool's Python object) and no Python owner but the pool's list: a
    # caller's storage object is this same object (torch keeps one per storage), which the
    # pool keeps alive, so a weakref to it would reach it again
    if _python_refs(_pool, i) != _UNHELD or weakref.getweakrefcount(_pool[i]):
        return False
    return _use_count(_pool[i]._cdata) == 1 and not _pool[i].is_shared()


def _take(nbytes: int):
    with _lock:
        for i in reversed(range(len(_pool))):
            if _pool[i].nbytes() == nbytes and _unused(i):
                storage = _pool.pop(i)
                _pool.append(storage)
                return storage
        storage = torch.empty(nbytes, dtype=torch.uint8, device="cpu").untyped_storage()
        _advise_huge(storage)
        _pool.append(storage)
        total = sum(s.nbytes() for s in _pool)
        while total > POOL_BYTES:  # forget the oldest: held ones stay with their holders
            total -= _pool.pop(0).nbytes()
        return storage


def new_empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.empty; large CPU outputs are on huge pages and reuse dropped outputs' memory."""
    device = torch.device(device)
    if device.type != "cpu" or _get_current_dispatch_mode() is not None:
        # under a dispatch mode (FakeTensorMode when tracing) tensors are the mode's own
        return torch.empty(shape, dtype=dtype, device=device)
    _settle_malloc()
    nbytes = torch.Size(shape).numel() * dtype.itemsize
    if not MIN_BYTES <= nbytes <= POOL_BYTES or _use_count is None:
        t = torch.empty(shape, dtype=dtype, device=device)
        if nbytes >= MIN_BYTES:
            _advise_huge(t.untyped_storage())
        return t
    # device: not the default device (torch.device("meta") as a context, say)
    return torch.empty(0, dtype=dtype, device="cpu").set_(_take(nbytes), 0, shape)


def release_buffers() -> int:
    """Drop the pool's outputs that nothing else holds; -> bytes returned to the system."""
    with _lock:
        keep = [i for i in range(len(_pool)) if not _unused(i)]
        freed = sum(s.nbytes() for s in _pool) - sum(_pool[i].nbytes() for i in keep)
        _pool[:] = [_pool[i] for i in keep]
    return freed
