"""Reading orbax checkpoints: transfer (`config.init_from`) and fallback.

`load_params` reads parameters for `config.init_from`; `restore_latest_valid`
restores the newest step that is not corrupt (trainer resume, inference);
`write_json` writes the small JSON files beside them atomically.

`load_params` accepts two layouts:
  - a `CheckpointManager` directory (step sub-directories; the latest step's
    `state` item is read, as the trainer writes them), or
  - a single checkpoint directory holding a pytree with a `params` entry
    (as `ocp.StandardCheckpointer().save(path, {"params": ...})` writes it).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, TypeVar
import warnings

import flax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

T = TypeVar("T")

# In a checkpoints directory: what wrote it (task / model and config).
META_FILE = "mer_jax_meta.json"


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as JSON to `path` atomically: a kill never leaves half a file."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


class JsonFileError(ValueError):
  """A JSON file of a run or build is truncated or not JSON; names the file."""


def read_json(path: str, remedy: str = "") -> Any:
  """Reads a JSON file; a damaged one raises `JsonFileError` naming it."""
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise JsonFileError(
        f"{path} is damaged (truncated or not JSON: {e})"
        + (f"; {remedy}" if remedy else "")) from None


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


# ----------------------------------------------------------------------------
# Falling back past corrupt or half-written steps.


class CheckpointRestoreError(RuntimeError):
  """Every step of a checkpoint directory failed to restore."""


class CheckpointFallbackWarning(UserWarning):
  """A checkpoint step failed to restore and an older one will be tried."""


def step_dirs(directory: str) -> list[int]:
  """The step numbers under an orbax `CheckpointManager` directory, newest first.

  Orbax writes a step to `<step>.orbax-checkpoint-tmp-*` and renames it when
  complete, so only finished (or finished-then-damaged) steps have a purely
  numeric name.
  """
  if not os.path.isdir(directory):
    return []
  return sorted((int(d) for d in os.listdir(directory)
                 if d.isdigit() and os.path.isdir(os.path.join(directory, d))),
                reverse=True)


def restore_latest_valid(
    manager: "ocp.CheckpointManager | str",
    restore_fn: Callable[[int], T],
    *,
    quarantine: bool = False,
) -> tuple[int | None, T | None]:
  """Restores the newest step that restores, warning about each one skipped.

  A step can exist on disk and still fail to restore: a file truncated by a
  full disk, a copy interrupted half way, a damaged filesystem. Rather than
  give up (or silently start again from scratch), older steps are tried in
  turn, newest first.

  Args:
    manager: an `ocp.CheckpointManager`, or the directory one manages (for
      read-only callers such as `mer_jax.inference`).
    restore_fn: `restore_fn(step) -> restored`; any exception it raises marks
      the step as invalid. E.g. for the trainer
      `lambda s: mngr.restore(s, args=ocp.args.Composite(**items))`.
    quarantine: move every invalid step newer than the restored one out of
      the directory, to `<directory>/../corrupt_checkpoints/<step>-<time>`, and
      reload the manager. A trainer must do this: orbax silently skips saving
      a step when a step >= it already exists, so a corrupt newest step would
      stay the newest (and stay corrupt) after the run re-trains it. Only
      process 0 moves files; every process reloads.

  Returns:
    `(step, restored)`, or `(None, None)` when the directory holds no step.

  Raises:
    CheckpointRestoreError: steps exist but none restores; the message names
      each step with its error.
  """
  if isinstance(manager, (str, os.PathLike)):
    directory, mngr = os.fspath(manager), None
  else:
    directory, mngr = os.fspath(manager.directory), manager
    mngr.reload()  # the trainer may have been killed and restarted
  steps = (sorted(mngr.all_steps(), reverse=True) if mngr is not None
           else step_dirs(directory))
  failures = []
  for i, step in enumerate(steps):
    try:
      restored = restore_fn(step)
    except Exception as e:  # pylint: disable=broad-except
      # Orbax / tensorstore raise ValueError, OSError, KeyError, ... depending
      # on which file is damaged; any of them means "this step is unusable".
      _silence_closed_loop_callbacks()
      msg = f"{type(e).__name__}: {_first_line(e)}"
      failures.append((step, msg))
      later = f"; trying step {steps[i + 1]}" if i + 1 < len(steps) else ""
      warnings.warn(f"Checkpoint step {step} in {directory} failed to restore "
                    f"({msg}){later}.", CheckpointFallbackWarning, stacklevel=2)
      continue
    if failures and quarantine:
      _quarantine(directory, [s for s, _ in failures], mngr)
    return step, restored
  if not steps:
    return None, None
  raise CheckpointRestoreError(
      f"No checkpoint step in {directory} restores:\n" +
      "\n".join(f"  step {s}: {m}" for s, m in failures))


def _silence_closed_loop_callbacks() -> None:
  """Drops the "Event loop is closed" noise of an aborted orbax restore.

  When one read of a restore fails, orbax closes its event loop while
  tensorstore's other reads are still in flight; each then reports
  `RuntimeError('Event loop is closed')` through `sys.unraisablehook`, a
  screenful of tracebacks after the real error was already handled. Only
  that exact error is dropped; everything else reaches the previous hook.
  """
  import sys  # pylint: disable=g-import-not-at-top
  previous = sys.unraisablehook
  if getattr(previous, "_mer_jax_filter", False):
    return

  def hook(unraisable):
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
      return
    previous(unraisable)

  hook._mer_jax_filter = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  line = text[0] if text else repr(e)
  # tensorstore appends its whole JSON spec: the file and the reason come first.
  return line.split(" [tensorstore_spec=")[0][:400]


def _quarantine(directory: str, steps: list[int], mngr) -> None:
  import shutil  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    dest_root = os.path.join(os.path.dirname(os.path.abspath(directory)),
                             "corrupt_checkpoints")
    os.makedirs(dest_root, exist_ok=True)
    for step in steps:
      src = os.path.join(directory, str(step))
      dest = os.path.join(dest_root, f"{step}-{int(time.time())}")
      shutil.move(src, dest)
      log.warning("moved the unusable checkpoint step %d to %s", step, dest)
  if mngr is not None:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices("mer_jax_checkpoint_quarantine")
    mngr.reload()
