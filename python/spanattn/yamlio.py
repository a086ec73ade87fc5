"""YAML as the CLI reads it: the YAML 1.2 core schema's floats on top of PyYAML's safe loader.

PyYAML implements YAML 1.1, where `3e-4` and `1e-3` (no dot) are strings; the TypeScript CLI
(YAML 1.2) reads them as numbers. Configs and `--set` values reach Python both ways (through
the CLI, and through `python -m spanattn.train` directly, as benchmarks/train_bench.py does),
so both must read the same value.
"""
from __future__ import annotations

import re

import yaml


class _Loader(yaml.SafeLoader):
    pass


# YAML 1.2 core schema float, plus 1.1's own forms (`.inf`, `.nan`, `1_000.5` stay as before)
_FLOAT = re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                      |[-+]?\.(?:inf|Inf|INF)
                      |\.(?:nan|NaN|NAN))$""", re.X)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list("-+.0123456789"):
    _Loader.yaml_implicit_resolvers.setdefault(_first, [])
    # ints first (their resolver stays ahead), then the wider float form
    _Loader.yaml_implicit_resolvers[_first].append(("tag:yaml.org,2002:float", _FLOAT))


def load(text: str):
    """Parse one YAML document (a config file or a `--set` value)."""
    return yaml.load(text, Loader=_Loader)
