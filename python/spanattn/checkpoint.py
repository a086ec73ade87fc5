"""Checkpoints: ``<run>/checkpoints/step-NNNNNN/`` in Hugging Face format, written atomically.

A checkpoint folder holds what transformers loads (``config.json``, ``model.safetensors``,
the tokenizer files), ``spanattn.json`` (span grammar, resolved training config, step) and
``trainer_state.pt`` (optimizer, step, RNG states; with LoRA also ``adapter/``) for exact
``--resume``. It is written into ``step-NNNNNN.tmp-<pid>`` and renamed into place, so a
crash or a full disk mid-write leaves the previous checkpoints intact; older ones beyond
``keep_last`` are removed only after the new one is complete.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

STEP_DIR = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / "trainer_state.pt").exists() and (p / "spanattn.json").exists():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, spanattn_json: str, trainer_state: dict,
                    keep_last: int, is_lora: bool = False) -> Path:
    from .model import merged_for_saving

    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        merged_for_saving(model).save_pretrained(str(tmp), safe_serialization=True)
        if is_lora:
            model.save_pretrained(str(tmp / "adapter"))
        tokenizer.save(tmp)
        (tmp / "spanattn.json").write_text(spanattn_json)
        torch.save(trainer_state, tmp / "trainer_state.pt")
        if final.exists():  # a re-run of the same step: replace it only once the new one is whole
            old = final.with_name(f"{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(path: Path) -> dict:
    return torch.load(Path(path) / "trainer_state.pt", map_location="cpu", weights_only=False)


def rng_state() -> dict:
    import random

    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
