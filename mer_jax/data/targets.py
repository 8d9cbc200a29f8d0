"""Per-clip training targets computed in the input pipeline, by name.

`config.input.targets = ("dynamic_image",)` adds `batch["dynamic_image"]`.
Each function maps the sampled uint8 clip `[T, H, W, C]` (after temporal
sampling and resize, before normalisation and augmentation noise) to a
float32 array; the pipeline batches it under the same name.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {}


def register(name: str):
  def wrap(fn):
    TARGETS[name] = fn
    return fn
  return wrap


def get(name: str) -> Callable[[np.ndarray], np.ndarray]:
  if name not in TARGETS:
    raise ValueError(f"Unknown input target {name!r}; known: {sorted(TARGETS)}")
  return TARGETS[name]
