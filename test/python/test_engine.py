"""The decode engine on the CPU (reference attention op): its sparse logits equal a full
forward pass under the spans.py mask, its dense logits equal plain causal attention, and
greedy dense generation equals transformers' own generate."""
import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from spanattn import spans
from spanattn.engine import Engine, UnsupportedModelError

G = spans.default_grammar()
SPECIAL = {tok: i for i, tok in enumerate(G.special_tokens)}  # ids 0..N-1 are special
TEXT0 = len(SPECIAL)
VOCAB = TEXT0 + 40


def tiny_llama(seed=0, **overrides):
    torch.manual_seed(seed)
    kw = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    cfg = LlamaConfig(**{**kw, **overrides})
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # biases start at zero; give them values so a dropped bias would show
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0, 0.1)
    return model


# the engine fuses q/k/v and gate/up and runs its own decode layer: check it on the other
# layouts a Llama config allows (biases, MHA, head_dim != hidden / heads)
VARIANTS = {
    "gqa": {},
    "gqa-compiled-state": {},  # Engine(compile_state=True): the state machine and bookkeeping through torch.compile
    "gqa-compiled-decode": {},  # Engine(compile_decode=True): the decode forward through torch.compile
    "gqa-compiled-decode-step-plan": {},  # and step_plan=True: the plan op traced once a step (a placeholder on CPU)
    "mha-bias-wide-heads": dict(num_attention_heads=4, num_key_value_heads=4, head_dim=32, attention_bias=True,
                                mlp_bias=True),
}


def ids(tokens):
    """Symbolic tokens -> ids; text tokens are 'tN'."""
    return [SPECIAL[t] if t in SPECIAL else TEXT0 + int(t[1:]) for t in tokens]


def toks(text_ids):
    return [f"t{i}" for i in text_ids]


S, O, C, B = "<seg>", "<attend>", "</attend>", "<bos>"
PROMPT_A = [B, *toks([1, 2]), S, *toks([3, 4, 5]), S, *toks([6, 7, 8, 9])]
FORCED_A = [S, O, "<ref1>", C, *toks([10, 11, 12]), S, O, "<ref-1>", C, *toks([13, 14]), S, *toks([15]), "<eos>"]
PROMPT_B = [B, *toks([2]), S, *toks([3, 3])]
FORCED_B = [S, O, "<ref-1>", C, *toks([4, 5, 6, 7]), S, O, "<ref9>", C, *toks([8]), "<eos>"]  # <ref9>: malformed


def full_masked_logits(model, tokens, sparse=True):
    p = spans.parse_tokens(tokens)
    mask = spans.attention_mask(p) if sparse else torch.ones(len(tokens), len(tokens), dtype=torch.bool).tril()
    x = torch.tensor([ids(tokens)])
    with torch.no_grad():
        return model(x, attention_mask=mask[None, None]).logits[0]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_replay_logits_equal_masked_full_forward(mode, variant):
    model = tiny_llama(**VARIANTS[variant])
    untouched = copy.deepcopy(model)  # the engine re-points the module weights at its fused matrices
    eng = Engine(model, batch_size=2, max_len=64, special_ids=SPECIAL, eos_id=SPECIAL["<eos>"],
                 compile_state=variant.endswith("compiled-state"), compile_decode="compiled-decode" in variant,
                 step_plan=variant.endswith("step-plan"))
    prompts = [ids(PROMPT_A), ids(PROMPT_B)]
    forced = [ids(FORCED_A), ids(FORCED_B)]
    gen = eng.generate(prompts, max_new_tokens=32, mode=mode, forced=forced, keep_logits=True)
    assert gen.tokens == forced
    for b, (prompt, f) in enumerate(zip((PROMPT_A, PROMPT_B), (FORCED_A, FORCED_B))):
        full = full_masked_logits(untouched, prompt + f, sparse=(mode == "sparse"))
        for j in range(len(f)):
            got = gen.logits[j][b]
            want = full[len(prompt) - 1 + j]
            torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4, msg=f"row {b} step {j} ({mode})")
    if mode == "sparse":
        assert gen.attended_fraction < 1.0
        assert gen.malformed == 1 and gen.directive_attempts == 4
    else:
        assert gen.attended_fraction == 1.0


def test_sparse_mask_really_differs_from_dense():
    # guard for the test above: with these sequences the two masks give different logits
    model = tiny_llama()
    a = full_masked_logits(model, PROMPT_A + FORCED_A, sparse=True)
    b = full_masked_logits(model, PROMPT_A + FORCED_A, sparse=False)
    assert (a - b).abs().max() > 1e-3


def test_dense_greedy_equals_hf_generate():
    model = tiny_llama(seed=3)
    prompts = [ids(PROMPT_A), ids(PROMPT_A[:5])]
    eng = Engine(model, batch_size=2, max_len=64, special_ids=SPECIAL, eos_id=None)
    gen = eng.generate(prompts, max_new_tokens=12, mode="dense")
    for b, p in enumerate(prompts):
        with torch.no_grad():
            ref = model.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert gen.tokens[b] == ref[0, len(p):].tolist()
    assert gen.generated_tokens == 24 and len(gen.step_ms) == 12


def test_stops_at_eos_and_counts_only_real_tokens():
    model = tiny_llama()
    eng = Engine(model, batch_size=3, max_len=64, special_ids=SPECIAL, eos_id=SPECIAL["<eos>"])
    gen = eng.generate([ids(PROMPT_B)], max_new_tokens=20, forced=[ids(FORCED_B)])
    assert gen.tokens == [ids(FORCED_B)] and gen.generated_tokens == len(FORCED_B)


def test_bad_calls_are_refused():
    model = tiny_llama()
    eng = Engine(model, batch_size=1, max_len=16, special_ids=SPECIAL, eos_id=None)
    with pytest.raises(ValueError, match="exceeds the engine's max_len=16"):
        eng.generate([ids(PROMPT_A)], max_new_tokens=10)
    with pytest.raises(ValueError, match="between 1 and batch_size=1"):
        eng.generate([ids(PROMPT_B)] * 2, max_new_tokens=2)
    with pytest.raises(ValueError, match="mode must be"):
        eng.generate([ids(PROMPT_B)], max_new_tokens=2, mode="fast")


def test_unsupported_architecture_is_refused():
    class Fake:
        class config:
            model_type = "gpt2"

    with pytest.raises(UnsupportedModelError, match="supports model types llama"):
        Engine(Fake(), batch_size=1, max_len=8, special_ids={}, eos_id=None)


@pytest.mark.parametrize("refill", ["decode", "prefill"])
@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_continuous_batching_refills_slots_and_matches_one_by_one(mode, refill):
    """Both refills: a dense prefill forward, or the prompt fed through the decode steps
    (Engine.refill). One prompt holds a directive and ends inside its sparse segment, so the
    state machine's reading of a refilled prompt must equal the host parse of a prefill."""
    from spanattn.engine import stream

    model = tiny_llama(seed=5)
    prompts = [ids(PROMPT_A), ids(PROMPT_B), ids(PROMPT_A[:6]), ids(PROMPT_B + toks([9])), ids(PROMPT_A[:9]),
               ids(PROMPT_A + FORCED_A[:6])]
    max_new = [3, 11, 5, 14, 4, 6]
    eng = Engine(model, batch_size=2, max_len=64, special_ids=SPECIAL, eos_id=None)
    gen = stream(eng, prompts, max_new, mode=mode, check_every=2, refill=refill)
    assert gen.meta["continuous"] and gen.meta["refill"] == refill and gen.generated_tokens == sum(max_new)
    one = Engine(model, batch_size=1, max_len=64, special_ids=SPECIAL, eos_id=None)
    singles = [one.generate([p], max_new_tokens=m, mode=mode) for p, m in zip(prompts, max_new)]
    for single, got in zip(singles, gen.tokens):
        assert got == single.tokens[0]
    # the refilled prompts' own tokens are not counted as attended keys: the same totals
    assert gen.attended_keys == sum(g.attended_keys for g in singles)
    assert gen.possible_keys == sum(g.possible_keys for g in singles)
    # 6 prompts through 2 slots: fewer steps than running them one after another
    assert gen.meta["steps"] < sum(max_new) + (sum(len(p) for p in prompts[2:]) if refill == "decode" else 0)


def test_refill_needs_room_for_the_prompt():
    model = tiny_llama(seed=5)
    eng = Engine(model, batch_size=2, max_len=64, special_ids=SPECIAL, eos_id=None)
    eng.prefill([ids(PROMPT_B)], 4)
    eng._begin("sparse", forced=None, forced_width=3)
    with pytest.raises(ValueError, match="a prompt of 12 tokens needs forced_width >= 11"):
        eng.refill([1], [ids(PROMPT_A)], [4])


def test_the_step_logs_its_attended_fraction_per_step():
    """track_steps reads the step's own log (count_log): one entry a step; dense steps read
    every key; sparse steps read fewer once a directive has closed, and their log agrees with
    the run's totals."""
    model = tiny_llama()
    eng = Engine(model, batch_size=2, max_len=64, special_ids=SPECIAL, eos_id=SPECIAL["<eos>"])
    prompts, forced = [ids(PROMPT_A), ids(PROMPT_B)], [ids(FORCED_A), ids(FORCED_B)]
    steps = max(len(f) for f in forced)
    eng.prefill(prompts, 32)
    dense = eng.decode("dense", forced=forced, track_steps=True)
    assert dense.meta["attended_per_step"] == [1.0] * steps
    sparse = eng.decode("sparse", forced=forced, track_steps=True)
    per_step = sparse.meta["attended_per_step"]
    assert len(per_step) == steps and min(per_step) < 1.0 and max(per_step) == 1.0
    c = eng.count_log[:steps]  # running sums: the last one is the run's total
    assert int(c[-1, 0]) == sparse.attended_keys and int(c[-1, 1]) == sparse.possible_keys
    assert sparse.tokens == forced
