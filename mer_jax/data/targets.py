"""Per-clip training targets computed in the input pipeline, by name.

`config.input.targets = ("dynamic_image",)` adds `batch["dynamic_image"]`.
Each function maps the clip `[T, H, W, C]` the model sees, before
normalisation (`pipeline.AddTargets`, after temporal sampling, resize and
augmentation: uint8 without augmentation, float32 in [0, 255] with it), to a
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
