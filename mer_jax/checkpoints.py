"""Reading parameters out of orbax checkpoints for transfer (`config.init_from`).

Two layouts are accepted:
  - a `CheckpointManager` directory (step sub-directories; the latest step's
    `state` item is read, as the trainer writes them), or
  - a single checkpoint directory holding a pytree with a `params` entry
    (as `ocp.StandardCheckpointer().save(path, {"params": ...})` writes it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import flax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _is_manager_dir(path: str) -> bool:
  return any(d.isdigit() and os.path.isdir(os.path.join(path, d))
             for d in os.listdir(path))


def load_params(path: str) -> dict[str, Any]:
  """The `params` pytree (numpy leaves) stored under `path`."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"config.init_from={path!r} is not a directory. Give the orbax "
        "checkpoint directory written by a pretraining run (e.g. "
        "<workdir>/pretrained) or a fold's checkpoints/ directory.")
  if _is_manager_dir(path):
    step = max(int(d) for d in os.listdir(path) if d.isdigit())
    path = os.path.join(path, str(step))
    if os.path.isdir(os.path.join(path, "state")):
      path = os.path.join(path, "state")
  tree = ocp.StandardCheckpointer().restore(path)
  if "params" not in tree:
    raise ValueError(f"{path} holds no 'params' entry; found {sorted(tree)}")
  return tree["params"]


def merge_params(fresh: Any, loaded: Any) -> tuple[Any, list[str], list[str]]:
  """Takes every loaded leaf whose path and shape match a fresh one.

  Returns `(params, loaded_paths, new_paths)`; leaves of `loaded` that match
  nothing are reported in the log, never silently dropped.
  """
  flat_fresh = flax.traverse_util.flatten_dict(flax.core.unfreeze(fresh), sep="/")
  flat_loaded = flax.traverse_util.flatten_dict(dict(loaded), sep="/")
  out, used, new = {}, [], []
  for k, v in flat_fresh.items():
    src = flat_loaded.get(k)
    if src is not None and tuple(np.shape(src)) == tuple(v.shape):
      out[k] = np.asarray(src, dtype=v.dtype)
      used.append(k)
    else:
      out[k] = v
      new.append(k)
  unused = sorted(set(flat_loaded) - set(used))
  if unused:
    log.warning("init_from: %d checkpoint parameters match no model parameter "
                "(path or shape differ): %s", len(unused), unused[:20])
  return flax.traverse_util.unflatten_dict(out, sep="/"), used, new
