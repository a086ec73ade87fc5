"""Report what this Python environment can do, as one JSON result line (for `spanattn doctor`).

    PYTHONPATH=python python -m spanattn.doctor
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import platform
import sys


def version_of(module: str) -> str | None:
    try:
        importlib.import_module(module)
        return importlib.metadata.version(module)
    except Exception:  # a broken install is reported as missing, not raised
        return None


def main() -> None:
    result: dict = {"python": platform.python_version(), "executable": sys.executable}
    for name in ("torch", "transformers", "peft", "tokenizers", "jsonschema"):
        result[name] = version_of(name)
    result["cuda"] = None
    result["gpus"] = []
    if result["torch"]:
        import torch

        result["torch_cuda_build"] = torch.version.cuda
        if torch.cuda.is_available():
            result["cuda"] = torch.version.cuda
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                result["gpus"].append({"name": p.name, "computeCapability": f"{p.major}.{p.minor}",
                                       "memoryMiB": p.total_memory // 2**20})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
