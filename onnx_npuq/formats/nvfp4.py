"""NVF4 (quant_cy, single level) and NVFP4 (NVIDIA, two level): E2M1 in blocks of 16."""
import torch

from .base import Format
from .bits import abs_max
from .codecs import E2M1, E4M3
from .mx import ELEMENTS, round_element_

E4M3_MAX = 448.0
E2M1_MAX = 6.0


def round_e4m3(sf: torch.Tensor) -> torch.Tensor:
    """Non-negative float32 -> nearest E4M3 value (RNE; subnormals down to 2^-9), saturating."""
    return round_element_(sf.clone(), ELEMENTS["mxfp8e4m3"], "even")


def round_e2m1_(v: torch.Tensor) -> torch.Tensor:
    """float32 -> nearest E2M1 value (RNE) in place, saturating at +-6."""
    return round_element_(v, ELEMENTS["mxfp4"], "even")


class NVF4(Format):
    name = "nvf4"
    block = 16
    elem_bits = 4
    scale_bytes = 1
    elem_type = "E2M1"
    scale_type = "E4M3"

    def block_stats(self, xb, ts):
        """-> (E4M3 block scale, divisor, full multiplier), (M, 1) each; NaN/Inf anywhere
        in a block: its scale and multiplier are NaN (the block decodes to NaN)."""
        amax = abs_max(xb)
        bad = ~torch.isfinite(amax)
        amax = torch.where(bad, 0.0, amax)
        sf = amax / E2M1_MAX if ts is None else amax / (E2M1_MAX * ts)
        s = round_e4m3(sf.clamp(max=E4M3_MAX))
        mult = s if ts is None else s * ts
        div = torch.where(mult > 0, mult, 1.0)
        return torch.where(bad, float("nan"), s), div, torch.where(bad, float("nan"), mult)

    @staticmethod
    def _elements(xb, div, out=None):
        """Signed E2M1 values of the blocks (RNE: the sign rides along), into `out` if given."""
        return round_e2m1_(torch.div(xb, div, out=out))

    def fake_blocks(self, xb, stats, out):
        _, div, mult = stats
        self._elements(xb, div, out).mul_(mult)

    def encode_blocks(self, xb, stats):
        s, div, _ = stats
        return E2M1.encode(self._elements(xb, div)), E4M3.encode(s)

    def decode_blocks(self, codes, scales, ts=None):
        s = E4M3.decode(scales)
        return E2M1.decode(codes) * (s if ts is None else s * ts)


class NVFP4(NVF4):
    """NVIDIA's two-level form: per-tensor fp32 scale amax/(6*448), E4M3 block scales under it.

    The tensor amax is taken over finite values. The 32-bit tensor scale is left out of
    bits_per_element (negligible for weights).
    """

    name = "nvfp4"

    def tensor_scale(self, x):
        x = x.detach()
        lo, hi = torch.aminmax(x)  # one pass, no full-size temporary
        amax = torch.maximum(lo.abs(), hi.abs()).float()
        if not torch.isfinite(amax):
            a = x.abs()
            amax = torch.where(torch.isfinite(a), a, 0).amax().float()
        return torch.where(amax > 0, amax / (E2M1_MAX * E4M3_MAX), 1.0)
