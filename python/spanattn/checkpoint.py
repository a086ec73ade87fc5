"""Checkpoints: ``<run>/checkpoints/step-NNNNNN/`` in Hugging Face format, written atomically.

A checkpoint folder holds what transformers loads (``config.json``, ``model.safetensors``,
the tokenizer files), ``spanattn.json`` (span grammar, resolved training config, step) and
``trainer_state.pt`` (optimizer, step, RNG states; with LoRA also ``adapter/``) for exact
``--resume``. It is written into ``step-NNNNNN.tmp-<pid>`` and renamed into place, so a
crash or a full disk mid-write leaves the previous checkpoints intact; older ones beyond
``keep_last`` are removed only after the new one is complete. ``checkpoints/best/`` (with
``checkpoint.keep_best``) holds the weights at the best validation so far, written the same
way; it is not a step folder, so neither pruning nor ``--resume`` touches it.
"""
from __future__ import annotations

import json
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


def write_json_atomic(path: Path, obj) -> None:
    """path holds either its old content or all of obj as JSON, never a part."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    tmp.replace(path)


def best_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "best"


def _write_atomic_folder(final: Path, write) -> Path:
    """write(tmp) fills a temporary sibling folder, which then replaces `final` whole."""
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        if final.exists():  # replace it only once the new one is whole
            old = final.with_name(f"{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_model(folder: Path, model, tokenizer, spanattn_json: str, is_lora: bool) -> None:
    from .model import merged_for_saving

    merged_for_saving(model).save_pretrained(str(folder), safe_serialization=True)
    if is_lora:
        model.save_pretrained(str(folder / "adapter"))
    tokenizer.save(folder)
    (folder / "spanattn.json").write_text(spanattn_json)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, spanattn_json: str, trainer_state: dict,
                    keep_last: int, is_lora: bool = False) -> Path:
    def write(tmp: Path) -> None:
        _write_model(tmp, model, tokenizer, spanattn_json, is_lora)
        torch.save(trainer_state, tmp / "trainer_state.pt")

    final = _write_atomic_folder(checkpoint_dir(run_dir, step), write)
    for _, old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(run_dir: Path, model, tokenizer, spanattn_json: str, is_lora: bool = False) -> Path:
    """The weights, tokenizer and span config at the best validation (no optimizer state:
    it is for evaluation; training resumes from the step folders)."""
    return _write_atomic_folder(best_dir(run_dir), lambda tmp: _write_model(tmp, model, tokenizer, spanattn_json, is_lora))


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
