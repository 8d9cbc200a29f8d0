"""Models by name.

A model lives in `mer_jax/models/<name>.py` and is chosen with
`config.model_name = "<name>"`; `config.model` holds its keyword arguments.
Each module defines:

- `Model(num_classes: int, **config.model)`: a `flax.linen.Module` whose
  `__call__(frames, *, train: bool)` takes float32 `[B, T, H, W, C]` and
  returns `(logits [B, num_classes], aux: dict)`. `aux` carries extras (rank
  scores, dynamic images, reconstructions). BatchNorm statistics, if any, live
  in the `batch_stats` collection; dropout uses the `dropout` rng.
- optionally `aux_losses(aux, batch, **config.aux_loss) -> dict[str, scalar]`:
  extra loss terms, already weighted, that the trainer adds to the
  cross-entropy. `batch` is the input dict (see `mer_jax.data.pipeline`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import flax.linen as nn


def get_module(name: str) -> ModuleType:
  """Imports `mer_jax.models.<name>` with an error that lists what exists."""
  try:
    return importlib.import_module(f"mer_jax.models.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"mer_jax.models.{name}":
      raise
    import pkgutil  # pylint: disable=g-import-not-at-top
    known = sorted(m.name for m in pkgutil.iter_modules(__path__))
    raise ValueError(
        f"Unknown model_name {name!r}; available models: {known}. "
        "Set config.model_name to one of them.") from None


def get_model(name: str, num_classes: int, *, platform: str | None = None,
              **kwargs: Any) -> nn.Module:
  """Instantiates model `name` with its config kwargs.

  A module may define `resolve_kwargs(kwargs, platform) -> kwargs` to turn
  "auto" settings into the fastest ones for `platform` ("cpu", "gpu",
  "tpu"; default: `jax.default_backend()`).
  """
  module = get_module(name)
  resolve = getattr(module, "resolve_kwargs", None)
  if resolve is not None:
    import jax  # pylint: disable=g-import-not-at-top
    kwargs = resolve(kwargs, platform or jax.default_backend())
  try:
    return module.Model(num_classes=num_classes, **kwargs)
  except TypeError as e:
    raise ValueError(f"config.model does not fit model {name!r}: {e}") from None
