"""QuantEmbedding: an nn.Embedding whose table is stored packed, row by row.

    q = QuantEmbedding.from_embedding(emb, "int4sym")
    y = q(ids)   # == decode(encode(emb.weight, fmt, axis=1))[ids]

Looking up gathers the codes and scales of the rows asked for, then decodes only those
(an export: Gather, Gather, npuq::Dequantize), so a vocabulary table stays at its bits.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import formats
from ..ops import defs as ops
from .spec import parse_spec, spec_str
from .weight import Layout, QuantWeight


class QuantEmbedding(QuantWeight):
    def __init__(self, embedding: nn.Embedding, weight_format):
        super().__init__()
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"QuantEmbedding needs an nn.Embedding, got {type(embedding).__name__}")
        if embedding.max_norm is not None:
            # nn.Embedding renormalizes the rows it looks up, in place: a packed table cannot
            raise ValueError("an nn.Embedding with max_norm rewrites its rows at lookup; it cannot be packed")
        self.num_embeddings, self.embedding_dim = embedding.weight.shape
        self.padding_idx = embedding.padding_idx
        self._store_weight(embedding.weight, parse_spec(weight_format), Layout.rows_of(embedding.weight.shape, 1))
        self.act_format = None  # looked-up rows are weights, already in the format

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding, weight, activation=None) -> "QuantEmbedding":
        if activation is not None:
            raise ValueError("an embedding's input is indices: it takes no activation format")
        return cls(embedding, weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        p = self.packed_weight()
        rows = formats.Packed(
            format=p.format, codes=self.weight_codes.index_select(0, flat),
            scales=self.weight_scales.index_select(0, flat), shape=(flat.shape[0], self.embedding_dim),
            axis=1, dtype=p.dtype, block=p.block, tensor_scale=p.tensor_scale, options=p.options)
        return ops.dequantize(rows).reshape(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return (f"{self.num_embeddings}, {self.embedding_dim}, weight={spec_str(self.weight_format)}, "
                f"bits_per_weight={self.bits_per_weight:.4g}")
