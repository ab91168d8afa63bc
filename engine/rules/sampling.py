"""Reproducible random sampling of departments for spot checks.

The draw depends only on the seed and the set of departments (sorted first), so anyone
holding the recorded seed and list can repeat it and get the same sample.
"""
from __future__ import annotations

import math
import random
import secrets


def new_seed() -> str:
    return secrets.token_hex(8)


def sample_size(population: int, ratio) -> int:
    if not 0 < float(ratio) <= 1:
        raise ValueError("the sample ratio must be above 0 and at most 1")
    return 0 if population == 0 else max(1, math.ceil(population * float(ratio)))


def draw(departments: list[str], ratio, seed: str) -> list[str]:
    population = sorted(set(departments))
    size = sample_size(len(population), ratio)
    return sorted(random.Random(f"perfbudget:{seed}").sample(population, size))
