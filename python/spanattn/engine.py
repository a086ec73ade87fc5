"""The decode engine (DESIGN §5): batched generation with a static KV cache, dense prefill,
and a decode step (model forward + span state machine + argmax) that runs inside a CUDA
graph on the GPU (eagerly on the CPU). Dense and sparse runs use the same engine, the same
attention op and the same graph; they differ only in the intervals given to attention.

    # tiny CPU example (random weights, reference attention op)
    PYTHONPATH=python python -c "
    import torch; from transformers import LlamaConfig, LlamaForCausalLM
    from spanattn.engine import Engine
    m = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)).eval()
    e = Engine(m, batch_size=2, max_len=64, special_ids={}, eos_id=1)
    print(e.generate([[5, 6, 7], [8, 9]], max_new_tokens=8, mode='sparse').tokens)"

Supported architectures: the Llama family as transformers implements it
(`LlamaForCausalLM`; model_type "llama"). Others are refused with a clear message.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .kernel import span_decode_attention, span_plan
from .span_state import SpanState, compile_fixed_shapes, vocab_kind_tables
from . import spans
from .spans import Grammar, default_grammar

SUPPORTED_MODEL_TYPES = ("llama",)


class UnsupportedModelError(ValueError):
    pass


@dataclass
class Generation:
    """Result of one `generate` call. tokens[i]: the new tokens of prompt i (up to and
    including <eos>); step_ms: wall time of each decode step of the batch."""

    tokens: list[list[int]]
    step_ms: list[float]
    decode_seconds: float
    prefill_seconds: float
    generated_tokens: int
    attended_keys: int
    possible_keys: int
    directive_attempts: int
    malformed: int
    logits: list[torch.Tensor] | None = None  # per step (B, V) when keep_logits
    meta: dict = field(default_factory=dict)

    @property
    def attended_fraction(self) -> float:
        return self.attended_keys / self.possible_keys if self.possible_keys else 1.0

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0


def check_mode(mode: str) -> None:
    if mode not in ("sparse", "dense"):
        raise ValueError(f"mode must be 'sparse' or 'dense' (got {mode!r})")


def check_supported(model) -> None:
    mt = getattr(model.config, "model_type", None)
    if mt not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"the decode engine supports model types {', '.join(SUPPORTED_MODEL_TYPES)} (got {mt!r}); "
            "other architectures need their own decode forward in engine.py")


class _FusedLayer:
    """One Llama decoder layer's weights in the decode engine's layout (see Engine._fuse_weights)."""

    def __init__(self, layer):
        a, mlp = layer.self_attn, layer.mlp
        self.wqkv, self.bqkv = _fuse_linears([a.q_proj, a.k_proj, a.v_proj])
        self.wgu, self.bgu = _fuse_linears([mlp.gate_proj, mlp.up_proj])
        self.wo, self.bo = a.o_proj.weight, a.o_proj.bias
        self.wd, self.bd = mlp.down_proj.weight, mlp.down_proj.bias
        self.ln1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.ln2, self.eps2 = layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon
        self.norm_shape = (self.ln1.shape[0],)
        self.act = mlp.act_fn

    def owns(self, layer) -> bool:
        """Still the layer's storage (nobody replaced the module weights since)?"""
        return (layer.self_attn.q_proj.weight.data_ptr() == self.wqkv.data_ptr()
                and layer.mlp.gate_proj.weight.data_ptr() == self.wgu.data_ptr())

    @staticmethod
    def residual_linear(h: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """h + x @ w.T (+ b) as one GEMM with the residual as its C operand."""
        out = torch.addmm(h, x, w.t())
        return out if b is None else out + b


def _fuse_linears(linears) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate the weights (and biases) of Linear layers that read the same input, and
    point each layer's parameters at its rows of the result."""
    w = torch.cat([lin.weight.data for lin in linears], dim=0)
    # zeros stand in for a missing bias when only some of the layers have one
    b = torch.cat([lin.bias.data if lin.bias is not None else lin.weight.new_zeros(lin.out_features)
                   for lin in linears], dim=0) if any(lin.bias is not None for lin in linears) else None
    r = 0
    for lin in linears:
        n = lin.weight.shape[0]
        lin.weight.data = w[r:r + n]
        if lin.bias is not None:
            lin.bias.data = b[r:r + n]
        r += n
    return w, b


class Engine:
    """Static-cache batched decoder for a Llama-family `*ForCausalLM`.

    special_ids maps span special-token strings to ids (a tokenizer's vocabulary works);
    a model whose vocabulary has none of them simply never goes sparse.
    """

    def __init__(self, model, batch_size: int, max_len: int, special_ids: dict[str, int], eos_id: int | None,
                 grammar: Grammar | None = None, cuda_graph: bool | None = None, dtype: torch.dtype | None = None,
                 compile_state: bool = False, compile_decode: bool = False, step_plan: bool = True):
        """compile_state: torch.compile the span state machine's step and the step's
        bookkeeping (`_advance`): about 200 tiny elementwise ops, one kernel launch each on a GPU,
        become a few fused kernels; the model's layers are untouched; same results.
        compile_decode: torch.compile the decode forward too (embedding, norms, rotary, KV-cache
        writes, activations, around the GEMMs and the span kernel, which stays one custom op).
        step_plan: the span kernel's balanced schedule plans once a step (in layer 0) and every
        layer reads that plan, instead of one plan kernel a layer: the intervals and lengths are
        the same in every layer of a step. Same results; no effect on CPU or under `rows`."""
        check_supported(model)
        self.model = model
        self.cfg = model.config
        self.device = next(model.parameters()).device
        self.dtype = dtype or next(model.parameters()).dtype
        self.B = batch_size
        self.N = max_len
        self.grammar = grammar or default_grammar()
        self.eos_id = -1 if eos_id is None else eos_id
        cfg = self.cfg
        self.Hq = cfg.num_attention_heads
        self.Hkv = getattr(cfg, "num_key_value_heads", None) or self.Hq
        self.D = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.Hq
        self.scale = self.D ** -0.5
        self.kinds, self.values = vocab_kind_tables(special_ids, cfg.vocab_size, self.grammar, self.device)
        shape = (self.B, self.Hkv, self.N, self.D)  # (B, Hkv, Nmax, D) per layer
        self.k_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(cfg.num_hidden_layers)]
        self.v_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(cfg.num_hidden_layers)]
        self.state = SpanState(self.B, self.grammar, self.device, compile=compile_state)
        self.compile_state = compile_state
        self._advance_fn = compile_fixed_shapes(self._advance) if compile_state else self._advance
        self.compile_decode = compile_decode
        self.step_plan = step_plan
        self._forward_fn = compile_fixed_shapes(self._forward_decode) if compile_decode else self._forward_decode
        # static decode inputs/outputs (graph-captured)
        i64 = dict(dtype=torch.int64, device=self.device)
        self.tok = torch.zeros(self.B, **i64)
        self.pos = torch.zeros(self.B, **i64)
        self.done = torch.ones(self.B, dtype=torch.bool, device=self.device)
        self.limit = torch.zeros(self.B, **i64)  # stop when pos reaches it
        self.forced = torch.full((self.B, 1), -1, **i64)  # teacher-forced tokens (replay), -1 = free
        self.forced_len = torch.zeros(self.B, **i64)
        # rows whose forced tokens are their prompt (a slot refilled inside the decode loop, see
        # `refill`): read densely like a prefill, not counted, and decoded freely afterwards
        self.prompt_forced = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        self.step_idx = torch.zeros(self.B, **i64)
        self.dense = torch.zeros((), dtype=torch.bool, device=self.device)
        self.emitted = torch.full((self.B,), -1, **i64)  # this step's new token per row, -1 if idle
        # written by the step itself (inside the graph), read by the host once per decode: the
        # emitted tokens and the running sums of kept / possible keys, one column / row per step
        self.step_count = torch.zeros((), **i64)
        self.token_log = torch.full((self.B, self.N), -1, **i64)
        self.count_log = torch.zeros((self.N, 2), **i64)
        self.logits = torch.zeros(self.B, cfg.vocab_size, dtype=torch.float32, device=self.device)
        self._arange_b = torch.arange(self.B, device=self.device)
        self._arange_h = torch.arange(self.Hkv, device=self.device)
        half = self.D // 2
        self._rope_sign = torch.cat([-torch.ones(half), torch.ones(self.D - half)]).to(
            self.device, next(model.parameters()).dtype)
        self.fused = self._fuse_weights()
        self.use_graph = (self.device.type == "cuda") if cuda_graph is None else cuda_graph
        self._graph: torch.cuda.CUDAGraph | None = None

    # ------------------------------------------------------------------ the decode step
    def _fuse_weights(self) -> list[_FusedLayer]:
        """Per layer: q/k/v as one matrix and gate/up as one, so a decode layer is ~16
        kernels instead of ~40 (the step is launch-bound below a few GB of KV). The module
        weights are re-pointed at row slices of the fused matrices, so prefill (transformers'
        own forward) sees the same numbers and no weight is stored twice."""
        cached = getattr(self.model, "_spanattn_fused", None)
        if cached is not None and all(f.owns(layer) for f, layer in zip(cached, self.model.model.layers)):
            return cached
        fused = [_FusedLayer(layer) for layer in self.model.model.layers]
        self.model._spanattn_fused = fused
        return fused

    def _forward_decode(self, tok: torch.Tensor, pos: torch.Tensor, intervals, n_intervals) -> torch.Tensor:
        m = self.model.model
        B, Hq, Hkv, D = self.B, self.Hq, self.Hkv, self.D
        h = m.embed_tokens(tok)  # (B, hidden)
        cos, sin = m.rotary_emb(h[:, None], pos[:, None])  # (B, 1, D)
        # rotate_half(x) * sin == roll(x, D/2) * sin_signed (first half negated): 3 kernels for q and k together
        sin = sin * self._rope_sign
        seq_lens = (pos + 1).to(torch.int32)
        b_idx, h_idx, p_idx = self._arange_b[:, None], self._arange_h[None, :], pos[:, None]
        nq = Hq * D
        plan = None
        for i, f in enumerate(self.fused):
            x = F.rms_norm(h, f.norm_shape, f.ln1, f.eps1)
            qkv = F.linear(x, f.wqkv, f.bqkv)  # (B, (Hq + 2 Hkv) D)
            qk = qkv[:, : nq + Hkv * D].view(B, Hq + Hkv, D)
            qk = torch.addcmul(qk * cos, qk.roll(D // 2, dims=-1), sin)
            q = qk[:, :Hq].contiguous().to(self.dtype)
            self.k_cache[i].index_put_((b_idx, h_idx, p_idx), qk[:, Hq:].to(self.dtype))
            self.v_cache[i].index_put_((b_idx, h_idx, p_idx), qkv[:, nq + Hkv * D:].view(B, Hkv, D).to(self.dtype))
            if self.step_plan and plan is None:  # the same intervals and lengths in every layer
                plan = span_plan(q, self.k_cache[i], intervals, n_intervals, seq_lens)
            o = span_decode_attention(q, self.k_cache[i], self.v_cache[i], intervals, n_intervals, seq_lens,
                                      self.scale, plan=plan)  # (B, Hq, D)
            h = f.residual_linear(h, o.reshape(B, nq).to(h.dtype), f.wo, f.bo)
            x = F.rms_norm(h, f.norm_shape, f.ln2, f.eps2)
            g, u = F.linear(x, f.wgu, f.bgu).chunk(2, dim=-1)
            h = f.residual_linear(h, f.act(g) * u, f.wd, f.bd)
        h = m.norm(h)
        return self.model.lm_head(h)  # (B, V) in the model's dtype

    @torch.no_grad()
    def _step(self) -> None:
        """One decode step for the whole batch, all on the device, shapes fixed (no autograd,
        whoever calls it: a compiled decode forward could not trace a backward through the op)."""
        active = ~self.done
        kind = self.kinds[self.tok]
        value = self.values[self.tok]
        prompt = self.prompt_forced & (self.step_idx < self.forced_len)  # a refilled row's prompt token
        intervals, n, _ = self.state.step(kind, value, self.pos, active, dense=self.dense | prompt, counted=~prompt)
        self.logits.copy_(self._forward_fn(self.tok, self.pos, intervals, n))  # fp32, static
        self._advance_fn(active)

    def _advance(self, active: torch.Tensor) -> None:
        """Argmax (or the forced token), then the per-row bookkeeping: emitted, done, position."""
        free = self.logits.argmax(dim=-1)
        forced_now = self.forced.gather(1, self.step_idx.clamp(max=self.forced.shape[1] - 1)[:, None])[:, 0]
        use_forced = self.step_idx < self.forced_len
        nxt = torch.where(use_forced, forced_now, free)
        nxt = torch.where(active, nxt, self.tok)
        self.emitted.copy_(torch.where(active, nxt, torch.full_like(nxt, -1)))
        new_pos = torch.where(active, self.pos + 1, self.pos)
        finished = active & ((nxt == self.eos_id) & ~use_forced | (new_pos >= self.limit)
                             | (use_forced & (self.step_idx + 1 >= self.forced_len) & (self.forced_len > 0)
                                & ~self.prompt_forced))
        self.done.copy_(self.done | finished)
        self.pos.copy_(new_pos)
        self.tok.copy_(nxt)
        self.step_idx.add_(active.long())
        t = self.step_count.clamp(max=self.N - 1).view(1)
        self.token_log.index_copy_(1, t, self.emitted.view(-1, 1))
        sums = torch.stack([self.state.attended.sum(), self.state.possible.sum()])  # idle rows add nothing
        self.count_log.index_copy_(0, t, sums.view(1, 2))
        self.step_count.add_(1)

    def _ensure_graph(self) -> None:
        if not self.use_graph or self._graph is not None:
            return
        snapshot = self._snapshot()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):  # warm up (lazy init, kernel plans) outside the graph
                self._step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self._step()
        self._graph = g
        self._restore(snapshot)

    def _snapshot(self):
        st = self.state
        tensors = [self.tok, self.pos, self.limit, self.done, self.step_idx, self.step_count, st.seg_starts, st.cur,
                   st.mode, st.nref,
                   st.nvalid, st.refs, st.attempts, st.malformed, st.attended, st.possible]
        return [(t, t.clone()) for t in tensors]

    @staticmethod
    def _restore(snapshot) -> None:
        for t, saved in snapshot:
            t.copy_(saved)

    def _begin(self, mode: str, forced: list[list[int]] | None, forced_width: int = 1) -> None:
        """Back to the last prefill's state, ready to decode in `mode` (graph captured).
        forced_width: room for that many forced tokens a row (`refill` puts prompts there)."""
        check_mode(mode)
        if not hasattr(self, "_prefilled"):
            raise RuntimeError("decode() needs a prefill() first")
        self._restore(self._prefilled)
        self.dense.fill_(mode == "dense")
        self.step_idx.zero_()
        self.step_count.zero_()
        self.done.zero_()
        self.done[self._n:] = True
        self.prompt_forced.zero_()
        width = max([len(f) for f in forced] + [forced_width]) if forced else forced_width
        if self.forced.shape[1] < width:
            self.forced = torch.full((self.B, width), -1, dtype=torch.int64, device=self.device)
            self._graph = None
        self.forced.fill_(-1)
        self.forced_len.zero_()
        for b, f in enumerate(forced or []):
            if f:
                self.forced[b, : len(f)] = torch.tensor(f, device=self.device)
                self.forced_len[b] = len(f)
        self._ensure_graph()

    def _run_step(self) -> None:
        if self._graph is not None:
            self._graph.replay()
        else:
            self._step()

    # ------------------------------------------------------------------ prefill
    @torch.no_grad()
    def prefill(self, prompts: list[list[int]], max_new_tokens: int | list[int], chunk_tokens: int = 32768) -> float:
        """Dense prefill of up to batch_size prompts into the static cache (rows chunked so
        activations stay small); parses the prompts' spans on the host once. Returns seconds.
        Later `decode` calls restart from this state, so one prefill serves several decodes.
        max_new_tokens: one budget, or one per prompt."""
        n = len(prompts)
        if not 1 <= n <= self.B:
            raise ValueError(f"between 1 and batch_size={self.B} prompts per call (got {n})")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        max_new = [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)
        longest = max(len(p) + m for p, m in zip(prompts, max_new))
        if longest > self.N:
            raise ValueError(f"prompt + max_new_tokens = {longest} exceeds the engine's max_len={self.N}")
        sync = self.device.type == "cuda"
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        prompts = list(prompts) + [prompts[0]] * (self.B - n)  # padding rows run but are never counted
        self._fill_rows(list(range(self.B)), prompts, max_new + [max_new[0]] * (self.B - n), chunk_tokens)
        self._n = n
        self._max_new = max(max_new)
        self._prefilled = self._snapshot()
        if sync:
            torch.cuda.synchronize()
        self._prefill_seconds = time.perf_counter() - t0
        return self._prefill_seconds

    def _fill_rows(self, rows: list[int], prompts: list[list[int]], max_new: list[int], chunk_tokens: int = 32768) -> None:
        """Prefill `prompts` into cache rows `rows` (dense, chunked) and set those rows' span
        state, input token, position and limit. Other rows are untouched."""
        T = max(len(p) for p in prompts)
        per_chunk = max(1, chunk_tokens // T)
        base = self.model.model  # no LM head: prefill logits are not needed (B*T*V floats)
        for c0 in range(0, len(rows), per_chunk):
            chunk = prompts[c0:c0 + per_chunk]
            idx = torch.tensor(rows[c0:c0 + per_chunk], device=self.device)
            ids = torch.zeros(len(chunk), T, dtype=torch.int64)
            mask = torch.zeros(len(chunk), T, dtype=torch.int64)
            for i, p in enumerate(chunk):
                ids[i, : len(p)] = torch.tensor(p)
                mask[i, : len(p)] = 1
            # equal lengths: no padding mask, so SDPA takes its causal fast path (a 4-D mask
            # at 32K tokens would not fit in memory)
            ragged = bool((mask == 0).any())
            out = base(input_ids=ids.to(self.device), attention_mask=mask.to(self.device) if ragged else None,
                       use_cache=True)
            for i, layer in enumerate(out.past_key_values.layers):
                self.k_cache[i][idx, :, :T] = layer.keys.to(self.dtype)
                self.v_cache[i][idx, :, :T] = layer.values.to(self.dtype)
            del out
        # span state after every prompt token but the last (the last is the first decode input)
        kinds, values = self.kinds.cpu(), self.values.cpu()
        parses = []
        for p in prompts:
            x = torch.tensor(p[:-1], dtype=torch.int64)
            parses.append(spans.parse_kinds(kinds[x].tolist(), values[x].tolist(), self.grammar, complete=False))
        self.state.load(parses, rows)
        idx = torch.tensor(rows, device=self.device)
        self.tok[idx] = torch.tensor([p[-1] for p in prompts], device=self.device)
        self.pos[idx] = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        self.limit[idx] = torch.tensor([len(p) - 1 + m for p, m in zip(prompts, max_new)], device=self.device)

    def refill(self, rows: list[int], prompts: list[list[int]], max_new: list[int]) -> None:
        """Start `prompts` in slots `rows` without a prefill: each row restarts at position 0
        with its prompt as forced tokens, which the next decode steps (the same CUDA graph as
        every step) read densely, like a prefill, and do not count; then it decodes freely. A
        few small host-to-device writes instead of a model forward, span parse and cache copies
        per refill; the row's first len(prompt) - 1 emitted tokens are its prompt. Needs
        `_begin(..., forced_width >= len(prompt) - 1)` first."""
        width = max(len(p) for p in prompts) - 1
        if width > self.forced.shape[1]:
            raise ValueError(f"a prompt of {width + 1} tokens needs forced_width >= {width} (have {self.forced.shape[1]})")
        idx = torch.tensor(rows, device=self.device)
        sel = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        sel[idx] = True
        self.state.reset(sel)
        forced = torch.full((len(rows), self.forced.shape[1]), -1, dtype=torch.int64)
        for i, p in enumerate(prompts):
            forced[i, : len(p) - 1] = torch.tensor(p[1:], dtype=torch.int64)
        self.forced[idx] = forced.to(self.device)
        self.forced_len[idx] = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        self.prompt_forced[idx] = True
        self.tok[idx] = torch.tensor([p[0] for p in prompts], device=self.device)
        self.pos[idx] = 0
        self.limit[idx] = torch.tensor([len(p) - 1 + m for p, m in zip(prompts, max_new)], device=self.device)
        self.step_idx[idx] = 0
        self.done[idx] = False

    # ------------------------------------------------------------------ generate
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], max_new_tokens: int, mode: str = "sparse",
                 forced: list[list[int]] | None = None, keep_logits: bool = False) -> Generation:
        """Greedy generation for up to batch_size prompts: `prefill` then `decode`."""
        check_mode(mode)
        self.prefill(prompts, max_new_tokens)
        return self.decode(mode, forced=forced, keep_logits=keep_logits)

    @torch.no_grad()
    def decode(self, mode: str = "sparse", forced: list[list[int]] | None = None, keep_logits: bool = False,
               max_new_tokens: int | None = None, track_steps: bool = False) -> Generation:
        """Decode from the last prefill's state. mode: "sparse" (the model's own directives)
        or "dense" (every key). `forced` teacher-forces each row's tokens (replay): a step that
        reads forced[i][j] is measured like any other."""
        self._begin(mode, forced)
        n = self._n
        max_new_tokens = min(self._max_new, max_new_tokens or self._max_new)
        sync = self.device.type == "cuda"
        prefill_s = self._prefill_seconds

        step_ms: list[float] = []
        logits: list[torch.Tensor] = []
        # per-step latency from CUDA events (no host sync per step); wall clock on the CPU
        events = [torch.cuda.Event(enable_timing=True) for _ in range(max_new_tokens + 1)] if sync else []
        if sync:
            events[0].record()
        t_dec = time.perf_counter()
        steps = 0
        for step in range(max_new_tokens):
            ts = time.perf_counter()
            self._run_step()  # it logs its tokens and key counts itself (token_log, count_log)
            if keep_logits:
                logits.append(self.logits.clone())
            steps += 1
            if sync:
                events[step + 1].record()
            else:
                step_ms.append((time.perf_counter() - ts) * 1000)
            # one host read every 16 steps to stop early, not one per token
            if step % 16 == 15 and bool(self.done.all()):
                break
        if sync:
            torch.cuda.synchronize()
            step_ms = [events[i].elapsed_time(events[i + 1]) for i in range(steps)]
        decode_s = time.perf_counter() - t_dec
        self.state.finish(~self.done)

        per_step: list[float] = []
        if track_steps:
            c = self.count_log[:steps].cpu()  # (steps, 2) cumulative kept / possible keys
            d = torch.diff(c, dim=0, prepend=torch.zeros(1, 2, dtype=c.dtype))
            per_step = [float(k) / float(p) if p else 1.0 for k, p in d.tolist()]
        rows = self.token_log[:n, :steps].cpu().tolist()
        tokens = [[t for t in r if t >= 0] for r in rows]
        st = self.state
        return Generation(
            tokens=tokens, step_ms=step_ms, decode_seconds=decode_s, prefill_seconds=prefill_s,
            generated_tokens=sum(len(t) for t in tokens),
            attended_keys=int(st.attended[:n].sum()), possible_keys=int(st.possible[:n].sum()),
            directive_attempts=int(st.attempts[:n].sum()), malformed=int(st.malformed[:n].sum()),
            logits=logits if keep_logits else None,
            meta={"mode": mode, "batch": n, "graph": self._graph is not None, "attended_per_step": per_step},
        )


class _Totals:
    """Host-side sums of per-row counters, harvested when a row's sequence ends."""

    def __init__(self):
        self.attended = self.possible = self.attempts = self.malformed = 0

    def harvest(self, eng: "Engine", rows: list[int]) -> None:
        idx = torch.tensor(rows, device=eng.device)
        st = eng.state
        self.attended += int(st.attended[idx].sum())
        self.possible += int(st.possible[idx].sum())
        self.attempts += int(st.attempts[idx].sum())
        self.malformed += int(st.malformed[idx].sum())


REFILLS = ("decode", "prefill")


def stream(engine: "Engine", prompts: list[list[int]], max_new_tokens: int | list[int], mode: str = "sparse",
           check_every: int = 8, refill: str = "decode", forced_width: int | None = None) -> Generation:
    """Continuous batching: any number of prompts through the engine's batch_size slots. Every
    `check_every` steps the host reads which rows finished (one sync) and starts the next
    prompts in those rows while the others keep their place; the decode step (and its CUDA
    graph) is the same as `Engine.decode`'s. refill="decode" (the default) feeds a new prompt
    through the decode steps themselves (`Engine.refill`: no host work per prompt token);
    "prefill" runs a dense prefill forward for the refilled rows. decode_seconds covers the
    whole loop, refills included; prefill_seconds is the first prefill plus the refills' host
    time. max_new_tokens may be one number or one per prompt. forced_width: room for refilled
    prompts (default: the longest refilled one); give a warm-up run the real run's, so that both
    capture the same graph."""
    check_mode(mode)
    if refill not in REFILLS:
        raise ValueError(f"refill must be one of {', '.join(REFILLS)} (got {refill!r})")
    eng = engine
    n = len(prompts)
    max_new = [max_new_tokens] * n if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(max_new) != n:
        raise ValueError(f"max_new_tokens has {len(max_new)} entries for {n} prompts")
    too_long = [q for q in range(n) if len(prompts[q]) + max_new[q] > eng.N]
    if too_long:
        q = too_long[0]
        raise ValueError(f"prompt {q}: {len(prompts[q])} tokens + {max_new[q]} new exceeds the engine's max_len={eng.N}")
    first = min(n, eng.B)
    sync = eng.device.type == "cuda"
    eng.prefill(prompts[:first], max_new[:first])
    prefill_s = eng._prefill_seconds
    in_graph = refill == "decode"
    if forced_width is None:
        forced_width = max(len(p) for p in prompts[first:]) - 1 if in_graph and n > first else 1
    eng._begin(mode, forced=None, forced_width=max(1, forced_width))
    # per slot: (step it started at, prompt, emitted tokens that are the prompt's own)
    owner: list[list[tuple[int, int, int]]] = [[(0, r, 0)] if r < first else [] for r in range(eng.B)]
    emitted: list[torch.Tensor] = []
    totals = _Totals()
    next_prompt = first
    step = 0
    t0 = time.perf_counter()
    logged = 0  # steps in eng.token_log since it was last read
    while True:
        eng._run_step()
        step += 1
        logged += 1
        if step % check_every and logged < eng.N:
            continue
        emitted.append(eng.token_log[:, :logged].clone())  # the step logs its tokens; start the log over
        eng.step_count.zero_()
        logged = 0
        if step % check_every:
            continue
        done = eng.done.cpu().tolist()
        free = [r for r in range(eng.B) if done[r] and owner[r]]
        if next_prompt >= n:
            if all(done[r] for r in range(eng.B) if owner[r]):
                break
            continue
        rows = free[: n - next_prompt]
        if not rows:
            continue
        mask = torch.zeros(eng.B, dtype=torch.bool, device=eng.device)
        mask[rows] = True
        eng.state.finish(mask)
        totals.harvest(eng, rows)
        ts = time.perf_counter()
        new = list(range(next_prompt, next_prompt + len(rows)))
        if in_graph:
            eng.refill(rows, [prompts[q] for q in new], [max_new[q] for q in new])
        else:
            eng._fill_rows(rows, [prompts[q] for q in new], [max_new[q] for q in new])
            idx = torch.tensor(rows, device=eng.device)
            eng.done[idx] = False
            eng.step_idx[idx] = 0
        prefill_s += time.perf_counter() - ts
        for r, q in zip(rows, new):
            owner[r].append((step, q, len(prompts[q]) - 1 if in_graph else 0))
        next_prompt += len(rows)
    if logged:
        emitted.append(eng.token_log[:, :logged].clone())
    if sync:
        torch.cuda.synchronize()
    decode_s = time.perf_counter() - t0
    live = [r for r in range(eng.B) if owner[r]]
    eng.state.finish(torch.tensor([bool(owner[r]) for r in range(eng.B)], device=eng.device))
    totals.harvest(eng, live)
    E = torch.cat(emitted, dim=1).cpu()  # (B, steps): the token each row emitted per step
    tokens: list[list[int]] = [[] for _ in range(n)]
    for r in live:
        bounds = owner[r] + [(E.shape[1], -1, 0)]
        for (start, q, own), (end, _, _) in zip(bounds, bounds[1:]):
            tokens[q] = [t for t in E[r, start:end].tolist() if t >= 0][own:]
    return Generation(
        tokens=tokens, step_ms=[decode_s * 1000 / max(1, step)] * step, decode_seconds=decode_s,
        prefill_seconds=prefill_s, generated_tokens=sum(len(t) for t in tokens), attended_keys=totals.attended,
        possible_keys=totals.possible, directive_attempts=totals.attempts, malformed=totals.malformed,
        meta={"mode": mode, "batch": eng.B, "graph": eng._graph is not None, "continuous": True, "steps": step,
              "refill": refill},
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
