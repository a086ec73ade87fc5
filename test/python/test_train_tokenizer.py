"""Span tokenizers: special tokens first and whole, saved and loaded as plain HF tokenizers."""
from spanattn import spans
from spanattn import tokenizer as tokenizers

G = spans.default_grammar()
TEXTS = ["[1] The mayor said on Monday that the bridge would reopen.", "[2] Traffic fell by a third.",
         "The bridge reopens.", "Evaluate step by step.", "12*(3+4)"] * 20


def test_bpe_tokenizer_specials_first_and_round_trip(tmp_path):
    tok = tokenizers.build_bpe_tokenizer(TEXTS, vocab_size=600)
    assert [tok.token_id(t) for t in G.special_tokens] == list(range(len(G.special_tokens)))
    ids = tok.encode("The bridge would reopen.")
    assert tok.decode(ids) == "The bridge would reopen."
    assert not set(ids) & set(tok.special_ids.values())
    tok.save(tmp_path)
    again = tokenizers.load_tokenizer(tmp_path)
    assert again.encode("Traffic fell.") == tok.encode("Traffic fell.")
    assert again.special_ids == tok.special_ids


def test_char_tokenizer_parse_matches_the_grammar(tmp_path):
    tok = tokenizers.build_char_tokenizer(TEXTS)
    toks = ["<bos>", "h", "<seg>", "1", "<seg>", "<attend>", "<ref-1>", "</attend>", "2", "<eos>"]
    ids = [tok.token_id(t) if t.startswith("<") and len(t) > 1 else tok.encode(t)[0] for t in toks]
    assert tok.parse(ids).sparse == spans.parse_tokens(toks).sparse
    tok.save(tmp_path)
    assert tokenizers.load_tokenizer(tmp_path)._char_vocab is not None  # the fast path survives a reload


def test_add_span_tokens_to_an_existing_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>"], show_progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>")
    n = len(hf)
    tok, new_ids = tokenizers.add_span_tokens(hf)
    assert len(new_ids) == len(G.special_tokens) and len(tok) == n + len(G.special_tokens)
    assert sorted(tok.special_ids.values()) == new_ids
