"""Models by name.

A model lives in `mer_jax/models/<name>.py` (or a package
`mer_jax/models/<name>/`) and is chosen with `config.model_name = "<name>"`;
`config.model` holds its keyword arguments. The module's `TASK` (default
"mer") names the task that trains it (`config.task`), and so its contract.

A MER model (`TASK` "mer", the default) defines:

- `Model(num_classes: int, **config.model)`: a `flax.linen.Module` whose
  `__call__(frames, *, train: bool)` takes float32 `[B, T, H, W, C]` and
  returns `(logits [B, num_classes], aux: dict)`. `aux` carries extras (rank
  scores, dynamic images, reconstructions). BatchNorm statistics, if any, live
  in the `batch_stats` collection; dropout uses the `dropout` rng.
- optionally `aux_losses(aux, batch, **config.aux_loss) -> dict[str, scalar]`:
  extra loss terms, already weighted, that the trainer adds to the
  cross-entropy. `batch` is the input dict (see `mer_jax.data.pipeline`).
- optionally `preview(aux, batch) -> (image [B, H, W] in [0, 1], target
  [B, H, W] or None)`: the per-clip picture the trainer draws for a fold
  (`config.preview_samples`), e.g. FDP's constructed dynamic image.

A pretraining model (`TASK = "<task>"`, a module of `mer_jax.tasks`) defines
`Model(**config.model)` with the call signature that task documents (e.g.
`ma2mi`, trained by `ma2mi_pretrain`: `(frame_t, diff, *, train) ->
(residual, aux)`); it has no classes. `get_model` builds either kind and
refuses a model whose `TASK` is not the one asked for.

Helper modules without a `Model` (`common`) are not models.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import flax.linen as nn


def available() -> list[str]:
  """Names of the model modules (those that define `Model`)."""
  import pkgutil  # pylint: disable=g-import-not-at-top
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if hasattr(importlib.import_module(f"mer_jax.models.{m.name}"),
                           "Model"))


def get_module(name: str) -> ModuleType:
  """Imports `mer_jax.models.<name>` with an error that lists what exists."""
  try:
    module = importlib.import_module(f"mer_jax.models.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"mer_jax.models.{name}":
      raise
    module = None
  if module is None or not hasattr(module, "Model"):
    raise ValueError(
        f"Unknown model_name {name!r}; available models: {available()}. "
        "Set config.model_name to one of them.") from None
  return module


def get_model(name: str, num_classes: int | None = None, *, task: str = "mer",
              platform: str | None = None, **kwargs: Any) -> nn.Module:
  """Instantiates model `name` with its config kwargs.

  Args:
    name: `config.model_name`.
    num_classes: passed to `Model` when given (MER models need it).
    task: the task that will train / run the model (`config.task`); the
      module's `TASK` (default "mer") must match.
    platform: for `resolve_kwargs` (below); default `jax.default_backend()`.
    **kwargs: `config.model`.

  A module may define `resolve_kwargs(kwargs, platform) -> kwargs` to turn
  "auto" settings into the fastest ones for `platform` ("cpu", "gpu",
  "tpu").
  """
  module = get_module(name)
  model_task = getattr(module, "TASK", "mer")
  if model_task != task:
    raise ValueError(
        f"Model {name!r} is trained by task {model_task!r}, not {task!r}: set "
        f"config.task = {model_task!r}, or choose a model of task {task!r}.")
  resolve = getattr(module, "resolve_kwargs", None)
  if resolve is not None:
    import jax  # pylint: disable=g-import-not-at-top
    kwargs = resolve(kwargs, platform or jax.default_backend())
  classes = {} if num_classes is None else {"num_classes": num_classes}
  try:
    return module.Model(**classes, **kwargs)
  except TypeError as e:
    raise ValueError(f"config.model does not fit model {name!r}: {e}") from None
