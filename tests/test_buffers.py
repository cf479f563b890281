"""Large outputs reuse the memory of outputs nobody holds any more, and never that of one
somebody still sees (formats/buffers.py)."""
import os
import threading
import time
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from onnx_npuq.formats import buffers, get_format, release_buffers

ROWS, COLS = 1024, 2048  # 8 MiB of float32: pooled


@pytest.fixture
def fmt():
    release_buffers()
    return get_format("mxfp4")


def _x(seed=0):
    return torch.randn(ROWS, COLS, generator=torch.Generator().manual_seed(seed))


def test_a_dropped_output_is_reused_with_the_same_values(fmt):
    x, y = _x(1), _x(2)
    first = fmt.fake_quant(x)
    ptr, expected = first.data_ptr(), first.clone()
    del first
    fmt.fake_quant(y)  # writes into the same memory
    again = fmt.fake_quant(x)
    assert again.data_ptr() == ptr
    assert torch.equal(again, expected)


def _on(storage):
    return torch.empty(0).set_(storage, 0, (ROWS, COLS))


def _also(y):  # set_ onto a tensor of the caller's
    z = torch.empty(0)
    return z.set_(y)


EVERYTHING = lambda want: want  # noqa: E731
HOLDERS = {  # name: (what the caller keeps of an output y, the values seen through it, which values)
    "tensor": (lambda y: y, lambda h: h, EVERYTHING),
    "view": (lambda y: y[3:, 5:], lambda h: h, lambda want: want[3:, 5:]),
    "reshape": (lambda y: y.view(-1), lambda h: h.view(ROWS, COLS), EVERYTHING),
    "set_": (_also, lambda h: h, EVERYTHING),
    "parameter": (torch.nn.Parameter, lambda h: h.detach(), EVERYTHING),
    "numpy": (lambda y: y.numpy(), torch.from_numpy, EVERYTHING),
    "memoryview": (lambda y: memoryview(y.numpy()), lambda h: torch.from_numpy(np.asarray(h)), EVERYTHING),
    "frombuffer": (lambda y: torch.frombuffer(y.numpy(), dtype=torch.float32), lambda h: h.view(ROWS, COLS),
                   EVERYTHING),
    "storage": (lambda y: y.untyped_storage(), _on, EVERYTHING),
    "dlpack": (lambda y: torch.utils.dlpack.to_dlpack(y), torch.from_dlpack, EVERYTHING),
}


@pytest.mark.parametrize("holder", list(HOLDERS))
def test_an_output_somebody_holds_is_never_reused(fmt, holder):
    hold, see, which = HOLDERS[holder]
    y = fmt.fake_quant(_x(1))
    expected = y.clone()
    held = hold(y)
    del y
    fmt.fake_quant(_x(2))
    assert torch.equal(see(held), which(expected))


def test_a_weakref_to_an_outputs_storage_dies_with_it_or_sees_its_values(fmt):
    """A weakref holds nothing: what it still reaches must keep its values (a pool that keeps
    the caller's storage object alive would hand its memory out again)."""
    y = fmt.fake_quant(_x(1))
    expected = y.clone()
    ref = weakref.ref(y.untyped_storage())
    del y
    fmt.fake_quant(_x(2))
    storage = ref()
    assert storage is None or torch.equal(_on(storage), expected)


def test_an_output_autograd_saved_is_never_reused(fmt):
    """Only C++ holds it: the graph saved it for the backward pass."""
    w = torch.ones(ROWS, COLS, requires_grad=True)
    y = fmt.fake_quant(_x(1))
    expected, ptr = y.clone(), y.data_ptr()
    loss = (w * y).sum()
    del y
    assert fmt.fake_quant(_x(2)).data_ptr() != ptr
    loss.backward()
    assert torch.equal(w.grad, expected)


def test_shared_memory_is_never_reused(fmt):
    y = fmt.fake_quant(_x(1))
    y.share_memory_()  # another process may map it
    storage_ptr = y.untyped_storage().data_ptr()
    del y
    assert fmt.fake_quant(_x(2)).data_ptr() != storage_ptr


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["call", "drop", "view"]), st.integers(0, 3)), max_size=12))
def test_every_held_result_keeps_its_values(steps):
    """Calls, drops and views in any order: whatever is held still has its values."""
    release_buffers()
    fmt = get_format("int8sym")
    held: list = []  # (tensor or view, its expected values)
    for i, (op, k) in enumerate(steps):
        if op == "call":
            y = fmt.fake_quant(_x(i))
            held.append((y, y.clone()))
        elif held and op == "drop":
            held.pop(k % len(held))
        elif held:
            y, want = held.pop(k % len(held))
            held.append((y[k:], want[k:]))
        for y, want in held:
            assert torch.equal(y, want)


def test_encode_codes_are_pooled_too(fmt):
    x = torch.randn(4 * ROWS, COLS)  # 4 MiB of codes
    p = fmt.encode(x)
    ptr = p.codes.data_ptr()
    del p
    q = fmt.encode(x)
    assert q.codes.data_ptr() == ptr
    assert torch.equal(q.decode(), fmt.fake_quant(x))


def test_the_pool_stays_under_its_cap(fmt, monkeypatch):
    monkeypatch.setattr(buffers, "POOL_BYTES", 3 * ROWS * COLS * 4)
    held = [fmt.fake_quant(_x(i)) for i in range(5)]  # 5 outputs, 3 fit
    assert sum(s.nbytes() for s in buffers._pool) <= buffers.POOL_BYTES
    del held
    assert release_buffers() == 3 * ROWS * COLS * 4
    assert buffers._pool == []


def test_outputs_over_the_cap_are_plain(fmt, monkeypatch):
    monkeypatch.setattr(buffers, "POOL_BYTES", ROWS * COLS * 4 - 1)
    y = fmt.fake_quant(_x())
    assert buffers._pool == [] and y.shape == (ROWS, COLS)


def test_release_keeps_what_is_held(fmt):
    y = fmt.fake_quant(_x())
    z = fmt.fake_quant(_x(1))
    del z
    assert release_buffers() == ROWS * COLS * 4
    assert [s.data_ptr() for s in buffers._pool] == [y.untyped_storage().data_ptr()]


def test_threads_get_distinct_buffers(fmt):
    xs = [_x(i) for i in range(4)]
    want = [fmt.fake_quant(x) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(3):
            got[i] = fmt.fake_quant(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    assert len({g.data_ptr() for g in got} | {w.data_ptr() for w in want}) == 8


@pytest.mark.parametrize("case", ["bfloat16", "padded", "axis 0", "transposed"])
def test_conversions_through_reused_buffers_match_fresh_ones(case):
    """Inputs that are not contiguous float32 rows of whole blocks go through a pooled
    float32 copy (and come back through a pooled output): stale bytes of a reused buffer,
    in particular in the padding, must not show."""
    fmt = get_format("hif4")
    x, axis = _x(4), -1
    if case == "bfloat16":
        x = x.bfloat16()
    elif case == "padded":
        x = x[:, : COLS - 40]
    elif case == "axis 0":
        axis = 0
    else:
        x = x.t()
    release_buffers()
    fresh = fmt.fake_quant(x, axis)
    for nbytes in {s.nbytes() for s in buffers._pool}:  # poison every pooled size
        buffers._take(nbytes)
        torch.empty(0, dtype=torch.uint8).set_(buffers._pool[-1], 0, (nbytes,)).fill_(0xFF)
    again = fmt.fake_quant(x, axis)
    assert again.dtype == x.dtype and again.shape == x.shape and again.is_contiguous()
    assert torch.equal(again, fresh)
    assert torch.equal(fresh.float(), get_format("hif4").fake_quant(x.float().contiguous(), axis).float())


def test_under_fake_tensor_mode_nothing_comes_from_or_goes_to_the_pool(fmt):
    """Tracing (make_fx, export) runs the formats on FakeTensors: a pooled CPU storage cannot back
    one, and a fake storage must not be handed to a later real call."""
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    fmt.fake_quant(_x(1))  # dropped: a free pooled buffer of the size the fake call asks for
    with FakeTensorMode() as mode:
        fake = fmt.fake_quant(mode.from_tensor(_x(1)))
    assert isinstance(fake, FakeTensor) and fake.shape == (ROWS, COLS)
    assert [s.device.type for s in buffers._pool] == ["cpu"]


def test_the_default_device_does_not_reach_the_pool(fmt):
    expected = fmt.fake_quant(_x(1)).clone()
    with torch.device("meta"):  # e.g. building a model skeleton; the pool's memory is CPU all the same
        y = buffers.new_empty((ROWS, COLS), torch.float32, "cpu")
    assert y.device.type == "cpu" and [s.device.type for s in buffers._pool] == ["cpu"]
    del y
    assert torch.equal(fmt.fake_quant(_x(1)), expected)  # from the buffer new_empty pooled


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_fork_while_another_thread_is_in_the_pool_leaves_the_child_working(fmt):
    import multiprocessing

    inside = threading.Event()

    def take():  # another thread inside the pool's lock when the fork comes
        with buffers._lock:
            inside.set()
            time.sleep(0.3)

    thread = threading.Thread(target=take)
    thread.start()
    inside.wait()
    child = multiprocessing.get_context("fork").Process(target=fmt.fake_quant, args=(_x(),))
    child.start()
    thread.join()
    child.join(20)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
