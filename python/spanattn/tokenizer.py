"""Tokenizers that know the span grammar's special tokens (DESIGN §1, §3).

Three ways to get one, all saved as ordinary Hugging Face tokenizers (``save_pretrained``),
so ``AutoTokenizer.from_pretrained(checkpoint)`` loads them:
- ``build_char_tokenizer``: one token per character (arithmetic), vocab from the train split;
- ``build_bpe_tokenizer``: a byte-level BPE trained with HF ``tokenizers`` (news);
- ``add_span_tokens``: an existing model's tokenizer plus the span tokens (the caller then
  resizes the model's embeddings).
Built tokenizers put the special tokens first, in ``Grammar.special_tokens`` order.

    PYTHONPATH=python python -c "from spanattn import tokenizer as t; \
        tok = t.build_char_tokenizer(['1+2*3']); print(tok.encode('2*3'), len(tok))"
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import spans

UNK = "<unk>"


class SpanTokenizer:
    """An HF tokenizer plus the grammar's token ids and a (vocab,) kind/value table."""

    def __init__(self, hf, grammar: spans.Grammar | None = None):
        self.hf = hf
        self.grammar = grammar or spans.default_grammar()
        vocab = hf.get_vocab()
        missing = [t for t in self.grammar.special_tokens if t not in vocab]
        if missing:
            raise ValueError(f"tokenizer lacks {len(missing)} span tokens (first: {missing[0]}); use add_span_tokens")
        self.special_ids = {t: vocab[t] for t in self.grammar.special_tokens}
        self.vocab_size = len(hf)
        kinds = np.zeros(self.vocab_size, dtype=np.int8)
        values = np.zeros(self.vocab_size, dtype=np.int16)
        for tok, (kind, value) in spans.kind_table(self.grammar).items():
            kinds[self.special_ids[tok]] = kind
            values[self.special_ids[tok]] = value
        self.kinds, self.values = kinds, values
        self._char_vocab = _char_level_vocab(hf)

    def __len__(self) -> int:
        return self.vocab_size

    def token_id(self, token: str) -> int:
        return self.special_ids[token]

    @property
    def pad_id(self) -> int:
        return self.special_ids[self.grammar.pad]

    @property
    def bos_id(self) -> int:
        return self.special_ids[self.grammar.bos]

    @property
    def eos_id(self) -> int:
        return self.special_ids[self.grammar.eos]

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Plain text -> ids, no special tokens added (Rust, parallel for fast tokenizers)."""
        if not texts:
            return []
        if self._char_vocab is not None:  # one dict lookup per character, ~50x the Rust path here
            vocab, unk = self._char_vocab
            return [[vocab.get(c, unk) for c in text] for text in texts]
        backend = getattr(self.hf, "backend_tokenizer", None)
        if backend is not None:
            return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]
        return self.hf(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def parse(self, ids: Sequence[int]) -> spans.SpanParse:
        """The span parse of a token id sequence (the same state machine as inference)."""
        arr = np.asarray(ids, dtype=np.int64)
        return spans.parse_kinds(self.kinds[arr].tolist(), self.values[arr].tolist(), self.grammar)

    def save(self, path: str | Path) -> None:
        self.hf.save_pretrained(str(path))


def _char_level_vocab(hf) -> tuple[dict[str, int], int] | None:
    """(char -> id, unk id) when ``hf`` is a character-level WordLevel tokenizer like
    build_char_tokenizer's (every piece one character, no normalizer), else None."""
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    pre = spec.get("pre_tokenizer") or {}
    if spec["model"].get("type") != "WordLevel" or spec.get("normalizer") or pre.get("type") != "Split" \
            or pre.get("pattern", {}).get("Regex") != r"[\s\S]" or pre.get("behavior") != "Isolated":
        return None
    vocab = {t: i for t, i in spec["model"]["vocab"].items() if len(t) == 1}
    unk = spec["model"]["vocab"].get(spec["model"].get("unk_token", UNK))
    return (vocab, unk) if unk is not None else None


def _wrap(tok, grammar: spans.Grammar) -> SpanTokenizer:
    from transformers import PreTrainedTokenizerFast

    g = grammar
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=g.bos, eos_token=g.eos, pad_token=g.pad,
                                 unk_token=UNK)
    return SpanTokenizer(hf, g)


def build_char_tokenizer(texts: Iterable[str], grammar: spans.Grammar | None = None) -> SpanTokenizer:
    """Character-level: special tokens, ``<unk>``, then every character seen, sorted."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    g = grammar or spans.default_grammar()
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    vocab = {tok: i for i, tok in enumerate([*g.special_tokens, UNK])}
    for ch in sorted(chars):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in [*g.special_tokens, UNK]])
    return _wrap(tok, g)


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int, grammar: spans.Grammar | None = None) -> SpanTokenizer:
    """Byte-level BPE trained on ``texts``; the special tokens get the first ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    g = grammar or spans.default_grammar()
    specials = [*g.special_tokens, UNK]
    if vocab_size <= len(specials) + 256:
        raise ValueError(f"bpe vocab_size must exceed {len(specials) + 256} (special tokens + 256 bytes), got {vocab_size}")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, g)


def add_span_tokens(hf, grammar: spans.Grammar | None = None) -> tuple[SpanTokenizer, list[int]]:
    """Add the span tokens to an existing model's tokenizer; returns it and the new ids."""
    g = grammar or spans.default_grammar()
    from tokenizers import AddedToken

    before = set(hf.get_vocab().values())
    hf.add_tokens([AddedToken(t, special=True, normalized=False) for t in g.special_tokens], special_tokens=True)
    if hf.pad_token is None:
        hf.pad_token = g.pad
    vocab = hf.get_vocab()
    new_ids = sorted(vocab[t] for t in g.special_tokens if vocab[t] not in before)
    return SpanTokenizer(hf, g), new_ids


def load_tokenizer(path: str | Path, grammar: spans.Grammar | None = None) -> SpanTokenizer:
    from transformers import AutoTokenizer

    return SpanTokenizer(AutoTokenizer.from_pretrained(str(path)), grammar)


def record_texts(records: Iterable[dict]) -> Iterable[str]:
    for record in records:
        for seg in record["segments"]:
            yield seg["text"]
