"""Masked span training (DESIGN §3): the loop behind ``spanattn train``.

The model learns the task and the directives at once: every record is rendered with its span
tokens, the directive tokens are targets, and each attention layer sees the exact token-level
mask of DESIGN §1 (``--mask mixed`` trains each step under the sparse or the dense mask at
random, so one set of weights decodes both ways). AdamW, warmup + cosine, clipping, bf16
autocast on GPU, gradient accumulation, packing, DDP through torchrun (rank 0 writes),
HF-format checkpoints, exact ``--resume``. A stop request (SIGTERM, a first Ctrl-C, or
``train.time_limit_s``) ends the run after the current step with a checkpoint of that step;
a second Ctrl-C stops at once.

Bridge contract: human logs on stderr, JSON-lines events on stdout, the last stdout line one
JSON result object. Tiny CPU example (a dataset from ``spanattn gen-data arith``):

    PYTHONPATH=python python -m spanattn.train --config configs/train/arith-tiny.yaml \
        --set data=datasets/arith-tiny --out runs/arith-tiny
    PYTHONPATH=python python -m torch.distributed.run --standalone --nproc_per_node 2 \
        -m spanattn.train --config runs/arith-tiny/config.json --out runs/arith-tiny-ddp
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import batches, checkpoint, data, greedy, masks, spans
from . import model as models
from . import tokenizer as tokenizers
from .train_config import ConfigError, TrainConfig, load_config


class StopRequest:
    """SIGTERM or a first SIGINT asks the loop to stop after the current step and checkpoint it
    (a scheduler's time limit, `timeout`, the CLI forwarding Ctrl-C); a second SIGINT raises
    KeyboardInterrupt at once. Handlers are installed only in the main thread."""

    NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.signal: int | None = None
        self._saved: dict = {}

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM and self.signal is not None:
            return  # already stopping (a time box signals the whole process group, a parent may pass it on)
        if self.signal is None or signum == signal.SIGINT:
            self.signal = signum
        sys.stderr.write(f"{self.NAMES[signum]}: stopping after this step and saving a checkpoint"
                         + (" (Ctrl-C again to stop now, losing the steps since the last checkpoint)\n"
                            if signum == signal.SIGINT else "\n"))

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.NAMES:
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        return False


class TrainError(Exception):
    def __init__(self, message: str, hint: str | None = None, kind: str = "error"):
        super().__init__(message)
        self.hint = hint
        self.kind = kind


# --- process group, output ---------------------------------------------------------------

class Dist:
    def __init__(self, device_choice: str, cpu_threads: int = 0):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_choice == "auto" else device_choice == "cuda"
        if cuda and not torch.cuda.is_available():
            raise TrainError("train.device is cuda but torch sees no CUDA device", "use train.device: auto or cpu")
        self.device = torch.device(f"cuda:{self.local_rank}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        else:
            share = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
            torch.set_num_threads(cpu_threads or max(1, share))
        if self.world > 1:
            torch.distributed.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class Output:
    """Events on stdout and logs on stderr (rank 0 only), metrics.jsonl in the run folder, and
    with log.tensorboard the same scalars as TensorBoard events in <run>/tensorboard."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.run_dir = run_dir
        self.enabled = enabled
        self.tensorboard = None  # a SummaryWriter once open_tensorboard ran

    def open_tensorboard(self, start_step: int) -> None:
        """Events of a resumed run's lost tail (steps after start_step) are purged, as metrics.jsonl's are."""
        if not self.enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise TrainError(f"log.tensorboard: {e}", "pip install tensorboard (python/requirements.txt has it; "
                             "`spanattn setup` installs it), or set log.tensorboard: false", kind="config") from None
        self.tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"),
                                         purge_step=start_step + 1 if start_step else None)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None

    def event(self, name: str, **fields) -> None:
        if self.enabled:
            sys.stdout.write(json.dumps({"event": name, **fields}) + "\n")
            sys.stdout.flush()

    def log(self, message: str) -> None:
        if self.enabled:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def metric(self, **fields) -> None:
        if self.enabled:
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(fields) + "\n")
        if self.tensorboard is not None:
            group = fields.get("split", "train")
            for key, value in fields.items():
                if key not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tensorboard.add_scalar(f"{group}/{key}", value, fields["step"])


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics written after ``step`` (a killed run's tail that resume recomputes)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)


# --- schedule ----------------------------------------------------------------------------

def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to lr, then cosine to lr * min_lr_ratio at max_steps (step is 0-based)."""
    t = cfg.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.max_steps - t.warmup_steps)
    progress = min(1.0, (step - t.warmup_steps) / span)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_is_sparse(step: int, cfg: TrainConfig) -> bool:
    """The mask of a step: fixed by (seed, step), so resume and every rank agree."""
    if cfg.train.mask != "mixed":
        return cfg.train.mask == "sparse"
    return bool(np.random.default_rng([cfg.seed, step, 0x4D]).random() < cfg.train.mixed_sparse_ratio)


# --- model and tokenizer -----------------------------------------------------------------

def prepare_model(cfg: TrainConfig, train_records: list[dict], task: str, device: torch.device,
                  resume_from: Path | None, out: Output):
    """(model, tokenizer, attention implementation, new token ids)."""
    from transformers import AutoModelForCausalLM

    impl = models.attention_implementation(cfg.model.attention, device)
    dtype = torch.bfloat16 if cfg.model.dtype == "bfloat16" else torch.float32
    torch.manual_seed(cfg.seed)
    new_ids: list[int] = []
    if cfg.model.path:
        model, hf_tok = models.load_hf_model(cfg.model.path, impl, dtype)
        check_model_grammar(Path(cfg.model.path))
        tok, new_ids = tokenizers.add_span_tokens(hf_tok)
        models.resize_for_tokenizer(model, len(tok))
        if cfg.lora.enabled:
            if resume_from is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(resume_from / "adapter"), is_trainable=True)
            else:
                model = models.apply_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules,
                                          new_ids if cfg.lora.train_new_tokens else [])
        elif resume_from is not None:
            model = AutoModelForCausalLM.from_pretrained(str(resume_from), dtype=dtype, attn_implementation=impl)
    elif resume_from is not None:
        tok = tokenizers.load_tokenizer(resume_from)
        model = AutoModelForCausalLM.from_pretrained(str(resume_from), dtype=dtype, attn_implementation=impl)
    else:
        kind = cfg.model.tokenizer if cfg.model.tokenizer != "auto" else ("char" if task == "arith" else "bpe")
        texts = list(tokenizers.record_texts(train_records))
        try:
            tok = tokenizers.build_char_tokenizer(texts) if kind == "char" else tokenizers.build_bpe_tokenizer(
                texts, cfg.model.bpe_vocab_size)
        except ValueError as e:  # a vocabulary too small for the span tokens and the 256 bytes
            raise TrainError(f"model.bpe_vocab_size: {e}", "raise model.bpe_vocab_size", kind="config") from None
        out.log(f"tokenizer: {kind}, {len(tok)} tokens")
        model = models.build_default_model(cfg.model.config, len(tok), tok.pad_id, tok.bos_id, tok.eos_id, impl, dtype)
    return model.to(device), tok, impl, new_ids


def mixed_sources(cfg: TrainConfig, task: str, out: "Output") -> list[tuple[str, list[dict]]]:
    """The train records of train.mix, per dataset (its train file, its records as drawn): its
    train split `weight` times over (whole copies, then a seeded sample for the fraction; the
    same records every epoch)."""
    extra: list[tuple[str, list[dict]]] = []
    for i, m in enumerate(cfg.train.mix):
        try:
            ds = data.load_dataset(m.data)
        except data.DataError as e:
            raise TrainError(f"train.mix.{i}: {e}", e.hint) from None
        if ds.task != task:
            raise TrainError(f"train.mix.{i}: {m.data} is a {ds.task} dataset, {cfg.data} a {task} one",
                             "mix datasets of the same task")
        recs = ds.records("train")
        whole, frac = int(m.weight), m.weight - int(m.weight)
        rng = random.Random(f"{cfg.seed}:mix:{i}")
        picked = recs * whole + rng.sample(recs, round(frac * len(recs)))
        out.log(f"train.mix: {len(picked)} records of {m.data} (weight {m.weight:g} of {len(recs)})")
        extra.append((str(ds.path / "train.jsonl"), picked))
    return extra


def check_model_grammar(model_dir: Path) -> None:
    """A spanattn checkpoint used as a base must speak this build's grammar."""
    info = model_dir / "spanattn.json"
    if not info.exists():
        return
    theirs = json.loads(info.read_text()).get("grammar", {})
    ours = spans.default_grammar().to_dict()
    diff = data.grammar_differences(ours, theirs)
    if diff:
        caps = [d for d in diff if d.split(":")[0].startswith("max_")]
        raise TrainError(f"the dataset's span grammar does not match the model's ({'; '.join(caps or diff)}; dataset != model)",
                         "train from a model with the same grammar, or regenerate the dataset for it", kind="grammar")


# --- one step ----------------------------------------------------------------------------

def micro_loss(model, batch: batches.Batch, sparse: bool, impl: str, dtype, autocast_dtype, device) -> torch.Tensor:
    """Summed next-token cross-entropy of one micro-batch under the chosen mask."""
    mask = masks.model_mask(batch.meta, sparse, impl, dtype)
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids,
                       use_cache=False).logits
    return F.cross_entropy(logits.float().flatten(0, 1), batch.targets.flatten(), ignore_index=batches.IGNORE,
                           reduction="sum")


@torch.no_grad()
def validate(model, cfg: TrainConfig, tok, val_encoded, val_records, task, impl, dtype, autocast_dtype, device,
             max_new_tokens: int) -> dict:
    result: dict = {}
    if val_encoded:
        model.eval()
        lengths = np.array([len(e) for e in val_encoded])
        order = np.arange(len(val_encoded))
        rows = batches.pack(lengths, order, cfg.train.seq_len) if cfg.train.packing else [[i] for i in order.tolist()]
        mb = cfg.train.micro_batch_size
        groups = [rows[k:k + mb] for k in range(0, len(rows), mb)]
        # Full groups only where there are some: the training shape, so compiled kernels are reused.
        groups = ([g for g in groups if len(g) == mb] or groups)[: cfg.val.loss_batches]
        for mode in ("sparse", "dense"):
            total, count = 0.0, 0
            for group in groups:
                b = batches.collate(val_encoded, group, tok.pad_id, cfg.train.seq_len if cfg.train.packing else None).to(device)
                total += micro_loss(model, b, mode == "sparse", impl, dtype, autocast_dtype, device).item()
                count += b.n_targets
            result[f"val_loss_{mode}"] = total / max(1, count)
        model.train()
    n = cfg.val.exact_match_samples
    if task == "arith" and n and val_records:
        for mode in cfg.val.exact_match_modes:
            em = greedy.arith_exact_match(model, tok, val_records[:n], val_encoded[:n], mode == "sparse", max_new_tokens,
                                          impl, cfg.val.decode_batch_size, autocast_dtype)
            result[f"exact_match_{mode}"] = em["exact_match"]
            result[f"malformed_{mode}"] = em["malformed_directives"]
            result[f"examples_{mode}"] = em["examples"]
    return result


# --- the run -----------------------------------------------------------------------------

def run(cfg: TrainConfig, run_dir: Path, resume: bool = False) -> dict:
    started = time.time()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # stderr is for our log lines
    dist = Dist(cfg.train.device, cfg.train.cpu_threads)
    device = dist.device
    out = Output(run_dir, dist.main)
    try:
        with StopRequest() as stop:
            return _run(cfg, run_dir, resume, dist, out, started, stop)
    finally:
        out.close()
        dist.close()


def _resume_view(cfg: dict) -> dict:
    """What --resume must find unchanged: all of the config but train.time_limit_s, which
    bounds one process (a resumed run may get a new one)."""
    train_section = {k: v for k, v in (cfg.get("train") or {}).items() if k != "time_limit_s"}
    return {**cfg, "train": train_section}


def _run(cfg: TrainConfig, run_dir: Path, resume: bool, dist: Dist, out: Output, started: float,
         stop: StopRequest | None = None) -> dict:
    stop = stop or StopRequest()
    device = dist.device
    run_dir.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    resume_from: Path | None = None
    state: dict | None = None
    if resume:
        found = checkpoint.latest_checkpoint(run_dir)
        if found is None:
            raise TrainError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}", "start without --resume")
        resume_from = found[1]
        saved = json.loads((resume_from / "spanattn.json").read_text())["train_config"]
        diff = data.grammar_differences(_resume_view(saved), _resume_view(cfg.to_dict()))
        if diff:
            raise TrainError(f"--resume: the config differs from the one the run started with: {'; '.join(diff[:3])}",
                             "resume with the run's own config (runs/<id>/config.json)")
        state = checkpoint.load_trainer_state(resume_from)

    dataset = data.load_dataset(cfg.data)
    # (train file, records): the main split, then train.mix's, encoded apart so that an error
    # names the right file and line
    sources = [(str(dataset.path / "train.jsonl"), dataset.records("train"))] + mixed_sources(cfg, dataset.task, out)
    train_records = [r for _, recs in sources for r in recs]
    val_records = dataset.records("val") if "val" in dataset.splits else []
    task = dataset.task
    check_best_metric(cfg, task, bool(val_records))
    model, tok, impl, new_ids = prepare_model(cfg, train_records, task, device, resume_from, out)
    dtype = next(model.parameters()).dtype
    autocast_dtype = torch.bfloat16 if (t.precision == "bf16" or (t.precision == "auto" and device.type == "cuda")) else None

    skip = t.long_records == "skip"
    train_enc, skipped = [], 0
    for source, recs in sources:
        enc, n_skipped = batches.encode_records(recs, tok, t.loss_on, t.seq_len, skip, source=source)
        train_enc += enc
        skipped += n_skipped
    val_keep = [(r, e) for r in val_records for e in batches.encode_records([r], tok, t.loss_on, t.seq_len, True, 0)[0]]
    val_records = [r for r, _ in val_keep]
    val_enc = [e for _, e in val_keep]
    if skipped:
        out.log(f"skipped {skipped} train records longer than train.seq_len {t.seq_len}")
    if not train_enc:
        raise TrainError(f"no train records fit train.seq_len {t.seq_len}", "raise train.seq_len")
    longest = max(len(e) for e in train_enc)
    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if max_pos is not None and longest > max_pos:
        raise TrainError(f"a train record is {longest} tokens, beyond the model's max_position_embeddings {max_pos}",
                         "lower train.seq_len (with train.long_records: skip) or use a model with longer positions")
    rows_per_step = t.micro_batch_size * t.grad_accum * dist.world
    try:
        plan = batches.EpochPlan(np.array([len(e) for e in train_enc]), t.seq_len, t.packing, cfg.seed, rows_per_step)
    except ValueError as e:
        raise TrainError(str(e)) from None

    n_params = models.count_parameters(model)
    n_trainable = models.count_parameters(model, trainable_only=True)
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=t.lr, betas=(t.beta1, t.beta2), fused=device.type == "cuda")
    start_step = 0
    train_s = 0.0
    tokens_seen = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"])
        start_step = state["step"]
        train_s = state.get("train_s", 0.0)
        tokens_seen = state.get("tokens_seen", 0)
        if dist.main:
            truncate_metrics(run_dir / "metrics.jsonl", start_step)
    elif dist.main and (run_dir / "metrics.jsonl").exists():
        (run_dir / "metrics.jsonl").unlink()
    if dist.main:
        checkpoint.write_json_atomic(run_dir / "config.resolved.json", cfg.to_dict())
    if cfg.log.tensorboard:
        out.open_tensorboard(start_step)

    raw_model = model
    fwd_model = torch.compile(model, dynamic=False) if cfg.model.compile else model
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd_model = DDP(fwd_model, device_ids=[device.index] if device.type == "cuda" else None)
    model_config = getattr(raw_model, "config", None)
    peak = t.peak_tflops * 1e12 if t.peak_tflops else models.peak_flops(device)
    longest_response = max((len(e) - e.prompt_length for e in val_enc), default=32)
    max_new_tokens = cfg.val.max_new_tokens or int(1.25 * longest_response) + 8

    out.event("start", total_steps=t.max_steps, start_step=start_step, params=n_params, trainable_params=n_trainable,
              device=str(device), world_size=dist.world, attention=impl, mask=t.mask, vocab_size=len(tok),
              train_records=len(train_enc), rows_per_step=rows_per_step, resumed_from=str(resume_from) if resume_from else None)
    out.log(f"{n_params / 1e6:.2f}M params ({n_trainable / 1e6:.2f}M trainable) on {device} x{dist.world}, attention {impl}, "
            f"mask {t.mask}, {len(train_enc)} train records, {plan.steps_in_epoch(0)} steps/epoch")

    best: dict | None = (state or {}).get("best")  # {step, metric, value, checkpoint}

    def info_json(step: int, **extra) -> str:
        return models.spanattn_info(spans.default_grammar().to_dict(), cfg.to_dict(), step,
                                    {"task": task, "attention": impl, "base_model": cfg.model.path, **extra})

    def consider_best(step: int, val: dict) -> None:
        """checkpoint.keep_best: write checkpoints/best when this validation beats the best."""
        nonlocal best
        value = best_metric_value(cfg.checkpoint.best_metric, val) if cfg.checkpoint.keep_best else None
        if value is None:
            return
        higher = cfg.checkpoint.best_metric.startswith("exact_match")
        if best is not None and not (value > best["value"] if higher else value < best["value"]):
            return
        metric = cfg.checkpoint.best_metric
        path = checkpoint.save_best(run_dir, raw_model, tok, info_json(step, best={"metric": metric, "value": value}),
                                    is_lora=cfg.lora.enabled)
        best = {"step": step, "metric": metric, "value": value, "checkpoint": str(path)}
        out.event("best", **best)
        out.log(f"best {metric} so far: {value:.4f} at step {step} -> {path}")

    def save(step: int) -> Path:
        st = {"step": step, "optimizer": optimizer.state_dict(), "rng": checkpoint.rng_state(), "train_s": train_s,
              "tokens_seen": tokens_seen, "world_size": dist.world, "best": best}
        info = info_json(step)
        try:
            path = checkpoint.save_checkpoint(run_dir, step, raw_model, tok, info, st, cfg.checkpoint.keep_last,
                                              is_lora=cfg.lora.enabled)
        except OSError as e:
            found = checkpoint.latest_checkpoint(run_dir)
            raise TrainError(f"could not write the step-{step} checkpoint ({e.strerror or e}); "
                             f"{'the previous one is intact: ' + str(found[1]) if found else 'no earlier checkpoint exists'}",
                             "free disk space, then continue with --resume", kind="disk") from None
        out.event("checkpoint", step=step, path=str(path))
        return path

    last_loss = None
    last_val: dict = {}
    window = {"t": 0.0, "tokens": 0, "flops": 0.0, "steps": 0}
    step = start_step
    status, message = "ok", None
    stopped: str | None = None  # "signal" | "time_limit": a stop request ended the loop early

    def time_up() -> bool:
        return t.time_limit_s is not None and time.time() - started >= t.time_limit_s

    def stop_wanted() -> bool:
        return stop.signal is not None or time_up()

    model.train()
    def step_batches(s: int):
        """(targets in the global batch, tokens, causal pairs, this rank's micro-batches) of step s."""
        rows = plan.step_rows(s)
        lengths = [sum(len(train_enc[i]) for i in r) for r in rows]
        pairs = sum(len(train_enc[i]) * (len(train_enc[i]) + 1) // 2 for r in rows for i in r)
        micro = []
        for m in range(t.grad_accum):
            first = (m * dist.world + dist.rank) * t.micro_batch_size
            b = batches.collate(train_enc, rows[first:first + t.micro_batch_size], tok.pad_id, t.seq_len if t.packing else None)
            micro.append(b.pin() if device.type == "cuda" else b)
        return sum(encoded_targets(train_enc, r) for r in rows), sum(lengths), pairs, micro

    prefetch = batches.Prefetcher(step_batches, start_step, t.max_steps)
    t_prev = time.time()
    try:
        while step < t.max_steps:
            sparse = step_is_sparse(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, cfg)
            step_targets, n_tok, pairs, micro = prefetch.get(step)
            loss_acc = torch.zeros((), dtype=torch.float64, device=device)
            try:
                for m, b in enumerate(micro):
                    b = b.to(device)
                    sync = nullcontext() if (dist.world == 1 or m == len(micro) - 1) else fwd_model.no_sync()
                    with sync:
                        loss = micro_loss(fwd_model, b, sparse, impl, dtype, autocast_dtype, device)
                        (loss * dist.world / step_targets).backward()
                    loss_acc += loss.detach()
                grad_norm_t = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), t.grad_clip)
            except torch.OutOfMemoryError:
                optimizer.zero_grad(set_to_none=True)
                mb = t.micro_batch_size
                raise TrainError(f"out of GPU memory at step {step + 1} with train.micro_batch_size {mb}",
                                 f"try --set train.micro_batch_size={max(1, mb // 2)} --set train.grad_accum={t.grad_accum * 2} "
                                 "(same global batch)" if mb > 1 else "use a smaller model or train.seq_len", kind="oom") from None
            # a stop request on any rank stops every rank after this same step
            stop_t = torch.tensor(float(stop_wanted()), dtype=torch.float64, device=device)
            if dist.world > 1:
                both = torch.stack([loss_acc, stop_t])
                torch.distributed.all_reduce(both)
                loss_acc, stop_t = both[0], both[1]
            loss_sum, grad_norm, stop_any = torch.stack(
                [loss_acc, grad_norm_t.to(device, torch.float64), stop_t]).tolist()  # one sync a step
            step_loss = loss_sum / step_targets
            if not math.isfinite(step_loss) or not math.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)
                found = checkpoint.latest_checkpoint(run_dir)
                status = "nan"
                what = f"loss became {step_loss}" if not math.isfinite(step_loss) else f"gradient norm became {grad_norm}"
                message = (f"{what} at step {step + 1}; stopped without saving. Last good checkpoint: "
                           f"{found[1] if found else 'none (no checkpoint was written yet)'}")
                out.log(f"error: {message}")
                break
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            now = time.time()
            dt, t_prev = now - t_prev, now
            step += 1
            train_s += dt
            tokens_seen += int(n_tok)
            last_loss = step_loss
            flops = models.training_flops(model_config, n_params, int(n_tok), int(pairs)) if model_config is not None else 0.0
            window = {"t": window["t"] + dt, "tokens": window["tokens"] + n_tok, "flops": window["flops"] + flops,
                      "steps": window["steps"] + 1}
            if step % cfg.log.every == 0 or step == t.max_steps or step == start_step + 1:
                tps = window["tokens"] / max(window["t"], 1e-9)
                mfu = window["flops"] / max(window["t"], 1e-9) / peak / dist.world if peak else None
                eta = (t.max_steps - step) * window["t"] / window["steps"]
                lr = learning_rate(step - 1, cfg)
                out.metric(step=step, loss=step_loss, lr=lr, grad_norm=grad_norm, mask="sparse" if sparse else "dense",
                           tokens=tokens_seen, tokens_per_s=tps, mfu=mfu, train_s=train_s)
                out.event("step", step=step, total=t.max_steps, loss=step_loss, lr=lr, tokens_per_s=tps, mfu=mfu, eta_s=eta)
                out.log(f"step {step}/{t.max_steps}  loss {step_loss:.4f}  lr {lr:.2e}  {tps:,.0f} tok/s"
                        + (f"  mfu {100 * mfu:.1f}%" if mfu is not None else "") + f"  eta {eta:.0f}s")
                window = {"t": 0.0, "tokens": 0, "flops": 0.0, "steps": 0}
            if cfg.val.every and step % cfg.val.every == 0 and step < t.max_steps:
                if dist.main:
                    last_val = validate(raw_model, cfg, tok, val_enc, val_records, task, impl, dtype, autocast_dtype, device,
                                        max_new_tokens)
                    report_val(out, step, last_val)
                    consider_best(step, last_val)
                dist.barrier()
                t_prev = time.time()
            if cfg.checkpoint.every and step % cfg.checkpoint.every == 0 and step < t.max_steps:
                if dist.main:
                    save(step)
                dist.barrier()
                t_prev = time.time()
            if stop_any > 0 and step < t.max_steps:
                stopped = "time_limit" if stop.signal is None and time_up() else "signal"
                break
    finally:
        prefetch.close()

    final_ckpt = None
    if stopped == "time_limit":
        message = (f"stopped by train.time_limit_s ({t.time_limit_s:g} s) at step {step} of {t.max_steps}; "
                   "--resume continues the same run")
        out.log(message)
    elif stopped == "signal":
        # checkpoint this step (unless the loop just did) and stop: no final validation
        status = "interrupted"
        latest = checkpoint.latest_checkpoint(run_dir)
        if dist.main and step > start_step and (latest is None or latest[0] != step):
            save(step)
        dist.barrier()
        latest = checkpoint.latest_checkpoint(run_dir)
        final_ckpt = latest[1] if latest else None
        what = StopRequest.NAMES.get(stop.signal, "a stop request on another rank")
        message = (f"stopped by {what} at step {step} of {t.max_steps}; "
                   + (f"checkpoint {final_ckpt} (continue with --resume)" if final_ckpt else "no checkpoint was written"))
        out.log(message)

    test: dict = {}
    if status == "ok":
        if dist.main:
            last_val = validate(raw_model, cfg, tok, val_enc, val_records, task, impl, dtype, autocast_dtype, device,
                                max_new_tokens)
            report_val(out, step, last_val)
            if step > start_step or best is None:
                consider_best(step, last_val)
            final_ckpt = save(step) if step > start_step or checkpoint.latest_checkpoint(run_dir) is None else \
                checkpoint.latest_checkpoint(run_dir)[1]
            if cfg.val.test_exact_match_samples and task == "arith" and "test" in dataset.splits:
                test = test_exact_match(raw_model, cfg, tok, dataset, impl, autocast_dtype, max_new_tokens, out)
        dist.barrier()
    elapsed = time.time() - started
    tps_all = tokens_seen / train_s if train_s else None
    result = {
        "status": status, "message": message, "run_dir": str(run_dir), "steps": step, "max_steps": t.max_steps,
        "final_loss": last_loss, "val": {k: v for k, v in last_val.items() if not k.startswith("examples")},
        "test": test, "checkpoint": str(final_ckpt) if final_ckpt else None, "params": n_params,
        "trainable_params": n_trainable, "tokens_seen": tokens_seen, "train_s": train_s, "elapsed_s": elapsed,
        "tokens_per_s": tps_all, "device": str(device), "world_size": dist.world, "attention": impl, "mask": t.mask,
        "skipped_long_records": skipped, "resumed_from": str(resume_from) if resume_from else None,
        "best": best, "stopped": stopped,
        "signal": StopRequest.NAMES.get(stop.signal) if stopped == "signal" else None,
    }
    result["mfu"] = run_mfu(model_config, n_params, train_enc, tps_all, peak, dist.world) \
        if model_config is not None and tps_all and peak else None
    if dist.main:
        checkpoint.write_json_atomic(run_dir / "result.json", result)
    return result


def best_metric_value(metric: str, val: dict) -> float | None:
    """The keep_best metric of one validation; val_loss is the mean of the sparse and dense
    losses (a mixed-mask model decodes both ways)."""
    if metric == "val_loss":
        losses = [val[k] for k in ("val_loss_sparse", "val_loss_dense") if k in val]
        return sum(losses) / len(losses) if losses else None
    return val.get(metric)


def check_best_metric(cfg: TrainConfig, task: str, has_val: bool) -> None:
    """checkpoint.keep_best needs validations that compute its metric: fail before training."""
    c = cfg.checkpoint
    if not c.keep_best:
        return
    if not has_val:
        raise TrainError("checkpoint.keep_best: the dataset has no val split to choose the best checkpoint by",
                         "set checkpoint.keep_best: false", kind="config")
    if c.best_metric.startswith("exact_match"):
        mode = c.best_metric.removeprefix("exact_match_")
        if task != "arith" or not cfg.val.exact_match_samples or mode not in cfg.val.exact_match_modes:
            raise TrainError(f"checkpoint.best_metric {c.best_metric} is not computed by this run's validation "
                             f"(task {task}, val.exact_match_samples {cfg.val.exact_match_samples}, "
                             f"val.exact_match_modes {list(cfg.val.exact_match_modes)})",
                             "use checkpoint.best_metric: val_loss, or enable val.exact_match_samples (arith)", kind="config")


def encoded_targets(encoded: list[batches.Encoded], row: list[int]) -> int:
    return sum(encoded[i].n_targets for i in row)


def run_mfu(config, n_params: int, encoded, tokens_per_s: float, peak: float, world: int) -> float:
    """MFU of the whole run: FLOPs per token at this dataset's mean causal context."""
    lengths = np.array([len(e) for e in encoded], dtype=np.float64)
    pairs_per_token = float((lengths * (lengths + 1) / 2).sum() / lengths.sum())
    flops_per_token = models.training_flops(config, n_params, 1, 0) + models.training_flops(config, 0, 0, 1) * pairs_per_token
    return flops_per_token * tokens_per_s / peak / world


def report_val(out: Output, step: int, val: dict) -> None:
    scalars = {k: v for k, v in val.items() if not k.startswith("examples")}
    out.metric(step=step, split="val", **scalars)
    out.event("val", step=step, **scalars)
    out.log(f"val @ {step}: " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items()))


def test_exact_match(model, cfg: TrainConfig, tok, dataset, impl, autocast_dtype, max_new_tokens, out: Output) -> dict:
    n = cfg.val.test_exact_match_samples
    records = dataset.records("test", None if n < 0 else n)
    enc, _ = batches.encode_records(records, tok, cfg.train.loss_on, None, False, 0)
    res = {}
    for mode in cfg.val.exact_match_modes:
        t0 = time.time()
        em = greedy.arith_exact_match(model, tok, records, enc, mode == "sparse", max_new_tokens, impl,
                                      cfg.val.decode_batch_size, autocast_dtype)
        res[f"exact_match_{mode}"] = em["exact_match"]
        res[f"malformed_{mode}"] = em["malformed_directives"]
        res["n"] = em["n"]
        out.log(f"test exact match ({mode} mask): {100 * em['exact_match']:.2f}% of {em['n']} in {time.time() - t0:.0f}s")
    out.event("test", **res)
    return res


# --- entry point -------------------------------------------------------------------------

def read_config_file(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        from . import yamlio

        return yamlio.load(text) or {}
    return json.loads(text)


def apply_overrides(cfg: dict, pairs: list[str]) -> dict:
    from . import yamlio

    for pair in pairs:
        key, _, value = pair.partition("=")
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yamlio.load(value)
    return cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spanattn.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="YAML or JSON training config")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--bridge", action="store_true", help="exit 0 after the result line; the caller reads status")
    args = ap.parse_args(argv)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    try:
        cfg = load_config(apply_overrides(read_config_file(args.config), args.set))
        result = run(cfg, Path(args.out), args.resume)
    except (TrainError, ConfigError, data.DataError, models.ModelError) as e:
        kind = getattr(e, "kind", None) or {data.DataError: "data", ConfigError: "config",
                                            models.ModelError: "model"}.get(type(e), "error")
        hint = getattr(e, "hint", None)
        result = {"status": "error", "error": {"kind": kind, "message": str(e), "hint": hint}, "run_dir": args.out}
        if rank0:
            sys.stderr.write(f"error: {e}\n" + (f"hint: {hint}\n" if hint else ""))
    except KeyboardInterrupt:  # Ctrl-C (the CLI forwards it): no traceback, say what is kept
        if rank0:
            found = checkpoint.latest_checkpoint(Path(args.out))
            sys.stderr.write("training interrupted: the steps since the last checkpoint are lost; "
                             + (f"the newest checkpoint is {found[1]} (continue with --resume)\n" if found
                                else "no checkpoint was written yet\n"))
        return 130
    if rank0:
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    ok = result["status"] == "ok"
    if args.bridge and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0
    if result["status"] == "interrupted":  # as a shell reports the signal: 130 SIGINT, 143 SIGTERM
        return 128 + int(getattr(signal, result.get("signal") or "SIGINT", signal.SIGINT))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
