"""The decode engine on a GPU: the span kernel inside a CUDA graph gives the logits of a
full forward pass under the spans.py mask (bf16 tolerance). Run on the device machine:

    SPANATTN_GPU_TESTS=1 PYTHONPATH=python python3 -m pytest test/python/test_engine_gpu.py
"""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from spanattn import kernel, spans
from spanattn.engine import Engine

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

G = spans.default_grammar()
SPECIAL = {tok: i for i, tok in enumerate(G.special_tokens)}
TEXT0 = len(SPECIAL)


def ids(tokens):
    return [SPECIAL[t] if t in SPECIAL else TEXT0 + int(t[1:]) for t in tokens]


def text(*n):
    return [f"t{i}" for i in n]


S, O, C, B = "<seg>", "<attend>", "</attend>", "<bos>"
PROMPT = [B, *text(1, 2), S, *text(*range(3, 40)), S, *text(*range(40, 90))]
FORCED = [S, O, "<ref1>", C, *text(*range(5, 30)), S, O, "<ref-1>", C, *text(*range(30, 60)), "<eos>"]


@pytest.fixture(params=list(kernel.SCHEDULES))
def schedule(request):
    """The kernel's work split (cuda/span_schedule.h), both ways."""
    kernel.set_schedule(request.param)
    yield request.param
    kernel.set_schedule(kernel.DEFAULT_SCHEDULE)


@pytest.mark.parametrize("compile_state,compile_decode,step_plan,combine",
                         [(False, False, False, "kernel"), (True, False, False, "kernel"), (True, True, False, "kernel"),
                          (False, False, True, "kernel"), (True, True, True, "kernel"), (False, False, False, "fused"),
                          (True, True, True, "fused")],
                         ids=["eager", "compiled-state", "compiled-state-and-decode", "step-plan",
                              "compiled-and-step-plan", "fused-combine", "compiled-step-plan-fused-combine"])
@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_kernel_engine_in_a_cuda_graph_matches_the_masked_full_forward(mode, compile_state, compile_decode, step_plan,
                                                                       combine, schedule):
    kernel.set_combine(combine)
    try:
        _engine_matches_the_masked_full_forward(mode, compile_state, compile_decode, step_plan)
    finally:
        kernel.set_combine(kernel.DEFAULT_COMBINE)


def _engine_matches_the_masked_full_forward(mode, compile_state, compile_decode, step_plan):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=TEXT0 + 100, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = LlamaForCausalLM(cfg).cuda().eval()
    seq = PROMPT + FORCED
    p = spans.parse_tokens(seq)
    mask = spans.attention_mask(p) if mode == "sparse" else torch.ones(len(seq), len(seq), dtype=torch.bool).tril()
    with torch.no_grad():
        full = model(torch.tensor([ids(seq)], device="cuda"), attention_mask=mask[None, None].cuda()).logits[0].float()
    eng = Engine(model.to(torch.bfloat16), batch_size=2, max_len=256, special_ids=SPECIAL, eos_id=SPECIAL["<eos>"],
                 compile_state=compile_state, compile_decode=compile_decode, step_plan=step_plan)
    gen = eng.generate([ids(PROMPT)] * 2, max_new_tokens=len(FORCED), mode=mode, forced=[ids(FORCED)] * 2, keep_logits=True)
    assert gen.meta["graph"], "the decode step should run as a CUDA graph on the GPU"
    assert gen.tokens[0] == ids(FORCED)
    scale = full.abs().max().item()
    for j in range(len(FORCED)):
        got = gen.logits[j][0]
        want = full[len(PROMPT) - 1 + j]
        assert (got - want).abs().max().item() < 0.05 * scale, f"step {j}"
    if mode == "sparse":
        assert gen.attended_fraction < 0.8
    else:
        assert gen.attended_fraction == 1.0


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_continuous_batching_refill_through_the_graph_matches_the_same_loop_eager(mode, schedule):
    """stream(refill="decode") writes new prompts into the captured step's static tensors between
    replays (state reset, forced prompt, position, limit): the CUDA graph must generate exactly
    what the same loop does with every step run eagerly (the same kernels in the same order).
    Its logic against one-by-one decoding is tested on the CPU (test_engine.py)."""
    from spanattn.engine import stream

    torch.manual_seed(1)
    cfg = LlamaConfig(vocab_size=TEXT0 + 100, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    model = LlamaForCausalLM(cfg).cuda().eval().to(torch.bfloat16)
    prompts = [ids(PROMPT[: 20 + 7 * i]) for i in range(6)] + [ids(PROMPT + FORCED[:12])]
    max_new = [9, 30, 14, 3, 25, 11, 17]
    gens = {}
    for graph in (True, False):
        eng = Engine(model, batch_size=3, max_len=256, special_ids=SPECIAL, eos_id=None, cuda_graph=graph)
        gens[graph] = stream(eng, prompts, max_new, mode=mode, check_every=4, refill="decode")
        assert gens[graph].meta["graph"] == graph
    assert gens[True].tokens == gens[False].tokens
    assert [len(t) for t in gens[True].tokens] == max_new
    assert gens[True].attended_keys == gens[False].attended_keys
