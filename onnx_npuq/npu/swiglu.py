"""CPU reference of torch_npu.npu_dequant_swiglu_quant (int32 dequant, SwiGLU, int8 requant)."""

from __future__ import annotations

import torch

from ._common import (
    _FLOAT_TYPES, _INT8_RANGE, _bool_arg, _exporting, _float_arg, _group_counts, _int_arg, _npu_op,
    _npu_ops, _round_saturate, _tensor,
)


def npu_dequant_swiglu_quant(
    x,
    *,
    weight_scale=None,
    activation_scale=None,
    bias=None,
    quant_scale=None,
    quant_offset=None,
    group_index=None,
    activate_left=False,
    quant_mode=0,
    swiglu_mode=0,
    clamp_limit=7.0,
    glu_alpha=1.702,
    glu_bias=1.0,
):
    """torch_npu.npu_dequant_swiglu_quant: dequant -> SwiGLU -> int8 quant, per token group.

    x (tokens, 2H) int32: ((x + int32 bias) * weight_scale * activation_scale + float bias);
    bfloat16/float16 x is used as is. swiglu_mode=0: swish(A) * B with A the left half when
    activate_left else the right one, swish(z) = z / (1 + exp(-z)); swiglu_mode=1: A = even
    columns clamped to <= clamp_limit, B = odd columns clamped to [-clamp_limit, clamp_limit]
    plus glu_bias, out = A / (1 + exp(-glu_alpha * A)) * B. quant_mode=1 (dynamic):
    out *= quant_scale, scale = rowmax(|out|) / 127, y = RNE(out / scale); quant_mode=0 (static):
    y = RNE(out / quant_scale + quant_offset), scale = 0. y saturates to int8. group_index
    (counts of tokens) selects the rows of weight_scale / quant_scale for consecutive tokens;
    tokens past its sum get y = 0, scale = 0 (left unwritten on the NPU).
    Returns (y int8 of x.shape[:-1] + (H,), scale float32 of x.shape[:-1]).
    """
    # Sources: Ascend/op-plugin docs/context/torch_npu-npu_dequant_swiglu_quant.md (newest:
    # signature with swiglu_mode, clamp_limit, glu_alpha, glu_bias; dtypes, shapes, rules:
    # activation_scale required for int32 x, activation_scale / bias None for float x, bias and
    # quant_offset None with group_index, group_index counts) and
    # test/test_custom_ops/test_npu_dequant_swiglu_quant.py (golden: int32 bias before the
    # dequant, float bias after, static out / quant_scale + quant_offset, 1-D static
    # quant_scale = one scalar per group, dynamic scale = amax / 127);
    # op_plugin/python/meta/_meta_registrations.py (output shapes / dtypes); hicann/ops-nn
    # quant/dequant_swiglu_quant/tests/assets/golden.py (swish as x / (1 + exp(-alpha x)),
    # swiglu_mode 1 even/odd split and clamps, dynamic y = out / scale, np.rint) and
    # op_kernel/dequant_swiglu_quant.h (the same order of operations; static scale not written);
    # shared/spec/formats.md.
    fn = "npu_dequant_swiglu_quant"
    op = _npu_op(fn, x)
    if op is not None:
        kwargs = {
            "weight_scale": weight_scale, "activation_scale": activation_scale, "bias": bias,
            "quant_scale": quant_scale, "quant_offset": quant_offset, "group_index": group_index,
            "activate_left": activate_left, "quant_mode": quant_mode,
        }
        if swiglu_mode != 0:
            kwargs.update(swiglu_mode=swiglu_mode, clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)
        return op(x, **kwargs)
    if _exporting():
        return _npu_ops().npu_dequant_swiglu_quant(
            x, weight_scale=weight_scale, activation_scale=activation_scale, bias=bias,
            quant_scale=quant_scale, quant_offset=quant_offset, group_index=group_index,
            activate_left=activate_left, quant_mode=quant_mode, swiglu_mode=swiglu_mode,
            clamp_limit=clamp_limit, glu_alpha=glu_alpha, glu_bias=glu_bias)

    _tensor(fn, "x", x, (torch.int32, torch.bfloat16, torch.float16))
    _bool_arg(fn, "activate_left", activate_left)
    if _int_arg(fn, "quant_mode", quant_mode) not in (0, 1):
        raise ValueError(f"{fn}: quant_mode must be 0 (static) or 1 (dynamic), got {quant_mode}")
    if _int_arg(fn, "swiglu_mode", swiglu_mode) not in (0, 1):
        raise ValueError(f"{fn}: swiglu_mode must be 0 (standard) or 1 (clamped variant), got {swiglu_mode}")
    limit = _float_arg(fn, "clamp_limit", clamp_limit)
    alpha = _float_arg(fn, "glu_alpha", glu_alpha)
    gbias = _float_arg(fn, "glu_bias", glu_bias)
    if swiglu_mode == 1 and limit <= 0:
        raise ValueError(f"{fn}: clamp_limit must be > 0, got {clamp_limit}")
    if x.dim() < 2:
        raise ValueError(f"{fn}: x must be 2-D (TokensNum, 2H), got {x.dim()} dimensions")
    h2 = x.shape[-1]
    if h2 == 0 or h2 % 2:
        raise ValueError(f"{fn}: the last dimension of x must be even and non-zero, got {h2}")
    h = h2 // 2
    xr = x.reshape(-1, h2)
    tokens = xr.shape[0]
    dev = x.device

    # groups of consecutive tokens
    if group_index is not None:
        _tensor(fn, "group_index", group_index, (torch.int64,))
        if group_index.dim() != 1 or group_index.numel() == 0:
            raise ValueError(f"{fn}: group_index must be 1-D and non-empty, got shape {tuple(group_index.shape)}")
        if bias is not None:
            raise ValueError(f"{fn}: bias must be None when group_index is given")
        if quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset must be None when group_index is given")
        counts = _group_counts(fn, group_index)
        if min(counts) < 0:
            raise ValueError(f"{fn}: group_index must hold non-negative token counts, got {counts}")
        if sum(counts) > tokens:
            raise ValueError(f"{fn}: the sum of group_index ({sum(counts)}) exceeds the number of tokens ({tokens})")
    else:
        counts = [tokens]
    ngroups = len(counts)
    used = sum(counts)
    row_group = torch.repeat_interleave(torch.arange(ngroups, device=dev), torch.tensor(counts, device=dev))

    def per_group(arg, p, width, dtypes):
        """(G, width), or (width,) / (1, width) with one group -> float32 rows per used token."""
        _tensor(fn, arg, p, dtypes)
        ok = tuple(p.shape) == (ngroups, width) or (ngroups == 1 and tuple(p.shape) == (width,))
        if not ok:
            want = f"({ngroups}, {width})" + (f" or ({width},)" if ngroups == 1 else "")
            raise ValueError(f"{fn}: {arg} must have shape {want}, got {tuple(p.shape)}")
        return p.reshape(ngroups, width).to(torch.float32)[row_group]

    # dequant
    if x.dtype == torch.int32:
        if activation_scale is None:
            raise ValueError(f"{fn}: activation_scale is required when x is int32")
        _tensor(fn, "activation_scale", activation_scale, (torch.float32,))
        if activation_scale.numel() != tokens or not (
            activation_scale.dim() == 1 or activation_scale.shape[-1] == 1
        ):
            raise ValueError(
                f"{fn}: activation_scale must hold one value per token, shape ({tokens},) or ({tokens}, 1), "
                f"got {tuple(activation_scale.shape)}"
            )
        xi = xr[:used]
        fbias = None
        if bias is not None:
            _tensor(fn, "bias", bias, (torch.int32, torch.float32, torch.float16, torch.bfloat16))
            if tuple(bias.shape) not in ((h2,), (1, h2)):
                raise ValueError(f"{fn}: bias must have shape ({h2},) or (1, {h2}), got {tuple(bias.shape)}")
            if bias.dtype == torch.int32:
                xi = xi + bias.reshape(1, h2)
            else:
                fbias = bias.to(torch.float32).reshape(1, h2)
        v = xi.to(torch.float32)
        if weight_scale is not None:
            v = v * per_group("weight_scale", weight_scale, h2, (torch.float32,))
        v = v * activation_scale.reshape(tokens, 1).to(torch.float32)[:used]
        if fbias is not None:
            v = v + fbias
    else:
        if activation_scale is not None or bias is not None:
            raise ValueError(f"{fn}: activation_scale and bias must be None when x is {x.dtype}")
        if weight_scale is not None:  # allowed by the docs, not applied to a float x
            _tensor(fn, "weight_scale", weight_scale, (torch.float32,))
        v = xr[:used].to(torch.float32)

    # swiglu
    if swiglu_mode == 0:
        left, right = v[:, :h], v[:, h:]
        a, b = (left, right) if activate_left else (right, left)
        neg = torch.tensor(-1.0, dtype=torch.float32, device=dev)
    else:
        a = v[:, 0::2].clamp(max=limit)
        b = v[:, 1::2].clamp(-limit, limit) + torch.tensor(gbias, dtype=torch.float32, device=dev)
        neg = torch.tensor(-alpha, dtype=torch.float32, device=dev)
    out = a / (torch.exp(a * neg) + 1.0) * b

    # quant
    scale = torch.zeros(tokens, dtype=torch.float32, device=dev)
    if quant_mode == 1:
        if quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset is only used by static quantization (quant_mode=0)")
        if quant_scale is not None:
            out = out * per_group("quant_scale", quant_scale, h, _FLOAT_TYPES)
        s = out.abs().amax(-1, keepdim=True) / 127.0
        q = out / torch.where(s > 0, s, torch.ones_like(s))
        scale[:used] = s.reshape(-1)
    else:
        q = out
        if quant_scale is not None:
            _tensor(fn, "quant_scale", quant_scale, (torch.float32,))
            qshape = tuple(quant_scale.shape)
            if qshape == (ngroups, h) or (ngroups == 1 and qshape == (h,)):
                width = h  # per channel
            elif qshape in ((ngroups,), (ngroups, 1)):
                width = 1  # one scalar per group
            else:
                want = f"({ngroups}, {h})" + (f", ({h},)" if ngroups == 1 else "")
                raise ValueError(
                    f"{fn}: static quant_scale must have shape {want} (per channel) or ({ngroups},) / "
                    f"({ngroups}, 1) (one scalar per group), got {qshape}"
                )
            q = q / quant_scale.reshape(ngroups, width).to(torch.float32)[row_group]
            if quant_offset is not None:
                _tensor(fn, "quant_offset", quant_offset, (torch.float32,))
                if quant_offset.shape != quant_scale.shape:
                    raise ValueError(
                        f"{fn}: quant_offset must have the shape of quant_scale {qshape}, "
                        f"got {tuple(quant_offset.shape)}"
                    )
                q = q + quant_offset.reshape(ngroups, width).to(torch.float32)[row_group]
        elif quant_offset is not None:
            raise ValueError(f"{fn}: quant_offset requires quant_scale")

    y = torch.zeros(tokens, h, dtype=torch.int8, device=dev)
    y[:used] = _round_saturate(q, *_INT8_RANGE, torch.int8)
    return y.reshape(*x.shape[:-1], h), scale.reshape(x.shape[:-1])
