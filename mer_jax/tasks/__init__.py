"""Tasks by name: `config.task` chooses what `run(config, workdir)` does.

  mer             LOSO training and testing (`training.loso.train_and_evaluate`)
  ma2mi_pretrain  MA2MI self-supervised pretraining (`tasks/ma2mi_pretrain.py`)
"""

from __future__ import annotations

import importlib
from typing import Any

import ml_collections

# name -> (module, function(config, workdir)); imported only when run.
TASKS = {
    "mer": ("mer_jax.training.loso", "train_and_evaluate"),
    "ma2mi_pretrain": ("mer_jax.tasks.ma2mi_pretrain", "run"),
}


def run(config: ml_collections.ConfigDict, workdir: str) -> Any:
  """Validates `config`, takes the workdir lock and runs `config.task`."""
  if config.task not in TASKS:
    raise ValueError(f"Unknown config.task {config.task!r}: one of {sorted(TASKS)}.")
  from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mer_jax import run_identity  # pylint: disable=g-import-not-at-top
  config_lib.validate(config)
  module, fn = TASKS[config.task]
  acquired = run_identity.lock_workdir_multihost(workdir)
  try:
    return getattr(importlib.import_module(module), fn)(config, workdir)
  finally:
    if acquired:  # released by whoever took it (scripts/main.py holds its own)
      run_identity.unlock_workdir(workdir)
