"""Checkpoints: one on-disk format for model weights, and one reader.

The format (written by the trainer's folds, by MA2MI pretraining's export
`<workdir>/pretrained/` and by scripts/convert_fdp_torch.py):

  <dir>/mer_jax_meta.json  {"model_name", "model": the Model's kwargs except
                           num_classes, "num_classes"?, "class_names"?,
                           "config"?: the training config, ...the writer's}
  <dir>/<step>/state/      orbax pytree: "params" [+ "batch_stats"]; a trainer's
                           also "step", "opt_state"
  <dir>/<step>/best/       optional: the inner-validation selection
                           {"params", "batch_stats", "score", "step"}

`save_model` writes weights alone; a trainer writes the same with `manager`,
`save_step`, `write_meta` and resumes with `restore_or_init`.
`load_model_variables` (behind `load_params` for `config.init_from`, and
`mer_jax.inference`) reads it and the older layouts: a fold whose meta has
only "config"; `pretrained/` as one pytree `{"params"}`; `variables/` +
`model_config.json` of older convert_fdp_torch.py runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
from typing import Any, Callable, Mapping, TypeVar
import warnings

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

T = TypeVar("T")

META_FILE = "mer_jax_meta.json"  # beside the step dirs: what the model is
STATE, BEST = "state", "best"  # items of a step
# Older layouts, read only.
LEGACY_VARIABLES_DIR, LEGACY_CONFIG_FILE = "variables", "model_config.json"


class CheckpointError(ValueError):
  """A path is not a usable mer-jax checkpoint; the message says why."""


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


def fold_dirname(subject: str) -> str:
  """`<workdir>/folds/<this>/` of the fold that holds `subject` out."""
  return re.sub(r"[^0-9A-Za-z_.-]", "_", subject.replace("/", "__"))


# ----------------------------------------------------------------------------
# Writing.


def lists_to_tuples(x):
  """JSON lists back to the tuples configs use (module fields must hash)."""
  if isinstance(x, dict):
    return {k: lists_to_tuples(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return tuple(lists_to_tuples(v) for v in x)
  return x


def _normalized(meta: Mapping[str, Any]) -> dict[str, Any]:
  """`meta` with "model_name", "model" and "num_classes" filled in from its
  "config" (a trainer's meta) and "class_names" where they are missing."""
  meta = dict(meta)
  config = meta.get("config") or {}
  meta.setdefault("model_name", config.get("model_name"))
  meta.setdefault("model", dict(config.get("model") or {}))
  if meta.get("class_names") is not None:
    meta.setdefault("num_classes", len(meta["class_names"]))
  return meta


def model_kwargs(meta: Mapping[str, Any]) -> dict[str, Any]:
  """The Model's keyword arguments (with `num_classes` where known)."""
  meta = _normalized(meta)
  kw = lists_to_tuples(dict(meta["model"]))
  if meta.get("num_classes") is not None:
    kw["num_classes"] = int(meta["num_classes"])
  return kw


def write_meta(directory: str, meta: Mapping[str, Any]) -> None:
  """Writes `<directory>/mer_jax_meta.json` (atomically; process 0 only):
  the model ("model_name" and "model", or a training "config" holding them)
  and what else the writer records (class names, test subject, task)."""
  meta = _normalized(meta)
  if not meta["model_name"]:
    raise ValueError(f"checkpoint meta for {directory} names no model_name")
  if jax.process_index() == 0:
    write_json(os.path.join(directory, META_FILE), meta)


def manager(directory: str, max_to_keep: int | None = None) -> ocp.CheckpointManager:
  """The `CheckpointManager` of a run's steps (created if missing)."""
  return ocp.CheckpointManager(
      os.path.abspath(directory), options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep, create=True))


def save_step(mngr: ocp.CheckpointManager, step: int, items: Mapping[str, Any],
              json_items: Mapping[str, Any] | None = None) -> None:
  """Saves pytree `items` (e.g. `state`, `best`) and JSON ones as `step`."""
  args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
  args.update({k: ocp.args.JsonSave(v) for k, v in (json_items or {}).items()})
  mngr.save(step, args=ocp.args.Composite(**args))


def restore_or_init(mngr: ocp.CheckpointManager, init: Mapping[str, Any],
                    json_init: Mapping[str, Any] | None = None
                    ) -> tuple[int, dict[str, Any]]:
  """`(step, items)` of the newest step that restores, else `(0, init)`.

  `init` maps item names to fresh pytrees (restored into their structure,
  dtypes and shardings), `json_init` to fresh JSON values. Corrupt newer
  steps are warned about and quarantined (`restore_latest_valid`).
  """
  args = {k: ocp.args.StandardRestore(v) for k, v in init.items()}
  args.update({k: ocp.args.JsonRestore() for k in json_init or {}})
  step, restored = restore_latest_valid(
      mngr, lambda s: mngr.restore(s, args=ocp.args.Composite(**args)),
      quarantine=True)
  if step is None:
    return 0, {**init, **(json_init or {})}
  return step, {k: restored[k] for k in args}


def save_model(directory: str, variables: Mapping[str, Any],
               meta: Mapping[str, Any], *, step: int = 0) -> str:
  """Writes `variables` (`{"params"[, "batch_stats"]}`, or some of a model's
  parameters) as `step`, with `meta` (see `write_meta`); returns `directory`.
  An earlier model there is replaced; a run's directory is refused."""
  directory = os.path.abspath(directory)
  other = [s for s in step_dirs(directory) if s != step]
  if other:
    raise CheckpointError(f"{directory} holds checkpoint steps {other}; save "
                          "the model to an empty directory")
  tree = {k: jax.device_get(dict(v)) for k, v in variables.items() if v}
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(directory, str(step), STATE), tree, force=True)
    ckptr.wait_until_finished()
  write_meta(directory, meta)
  return directory


# ----------------------------------------------------------------------------
# Reading.


def read_meta(directory: str) -> dict[str, Any]:
  """A checkpoint directory's meta, normalised (see `write_meta`); `{}` for a
  layout without one (an older `pretrained/`)."""
  path = os.path.join(directory, META_FILE)
  if os.path.isfile(path):
    try:
      return _normalized(read_json(path))
    except (OSError, ValueError) as e:
      raise CheckpointError(f"Cannot read {path}: {e}") from None
  legacy = os.path.join(directory, LEGACY_CONFIG_FILE)
  if os.path.isfile(legacy):
    meta = read_json(legacy)
    model = dict(meta.get("model", {}))
    return _normalized({"model_name": meta.get("model_name"),
                        "num_classes": model.pop("num_classes", None),
                        "model": model})
  return {}


@dataclasses.dataclass
class LoadedModel:
  """`variables` (`{"params"[, "batch_stats"]}`, numpy), the normalised `meta`,
  and the `step` and `item` read (None for a layout without steps);
  `selected_step`: for "best", the step inner validation chose."""
  variables: dict[str, Any]
  meta: dict[str, Any]
  step: int | None = None
  item: str | None = None
  selected_step: int | None = None


@contextlib.contextmanager
def _quiet_absl():
  # Restoring one item of a composite step makes orbax warn that the item has
  # no _CHECKPOINT_METADATA (that file lives one level up): a false alarm.
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def _restore_tree(path: str, keys: tuple[str, ...],
                  target: Mapping[str, Any] | None) -> dict[str, Any]:
  """Restores `target` (ShapeDtypeStructs; default: the stored `keys`) as numpy.

  `partial_restore` reads only what the target names, so a trainer's
  optimizer state is never read; numpy leaves ignore the run's sharding.
  """
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} does not exist")
  ckptr = ocp.PyTreeCheckpointer()
  with _quiet_absl():
    if target is None:
      stored = ckptr.metadata(path).item_metadata.tree
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                            {k: stored[k] for k in keys if stored.get(k)})
    restore_args = jax.tree.map(
        lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    out = ckptr.restore(path, args=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True))
  bad = []
  jax.tree.map_with_path(
      lambda p, t, r: bad.append(f"{jax.tree_util.keystr(p)}: checkpoint "
                                 f"{np.shape(r)}, model {t.shape}")
      if tuple(np.shape(r)) != tuple(t.shape) else None, target, out)
  if bad:
    raise CheckpointError("checkpoint does not fit the model rebuilt from its "
                          "config: " + "; ".join(bad[:5]))
  return out


def load_model_variables(directory: str, *, step: int | None = None,
                         target: Mapping[str, Any] | None = None) -> LoadedModel:
  """Reads model weights from any checkpoint layout (see the module doc).

  Args:
    directory: a checkpoint directory.
    step: read this step; default the newest that restores (older steps are
      tried, with a `CheckpointFallbackWarning`, when the newest is corrupt).
    target: `{"params", ["batch_stats"]}` ShapeDtypeStructs of the model to
      fill (a mismatch is a `CheckpointError`); default what is stored.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise CheckpointError(f"{directory} is not a checkpoint directory")
  meta = read_meta(directory)
  keys = ("params", "batch_stats")
  steps = step_dirs(directory)
  if not steps:  # an older layout: one pytree, no steps
    legacy = os.path.join(directory, LEGACY_VARIABLES_DIR)
    path = legacy if os.path.isdir(legacy) else directory
    if not os.path.isfile(os.path.join(path, "_CHECKPOINT_METADATA")):
      raise CheckpointError(f"{directory} holds no checkpoint step yet (the "
                            "run has not reached its first checkpoint).")
    tree = _restore_tree(path, keys, target)
    if "params" not in tree:
      raise CheckpointError(f"{path} holds no 'params' entry")
    return LoadedModel(variables=tree, meta=meta)
  selection = meta.get("selection", (meta.get("config") or {}).get(
      "protocol", {}).get("selection"))
  item = BEST if selection == "inner_val" else STATE
  if target is not None and item == BEST:
    target = {**target, "step": jax.ShapeDtypeStruct((), np.int32)}

  def restore(s: int) -> dict[str, Any]:
    return _restore_tree(os.path.join(directory, str(s), item),
                         keys + (("step",) if item == BEST else ()), target)

  if step is not None:
    if step not in steps:
      raise CheckpointError(f"No step {step} in {directory}; steps: {steps}")
    found, tree = step, restore(step)
  else:
    try:
      found, tree = restore_latest_valid(directory, restore)
    except CheckpointRestoreError as e:
      raise CheckpointError(str(e)) from None
  selected = int(tree.pop("step")) if item == BEST else found
  return LoadedModel(variables=tree, meta=meta, step=found, item=item,
                     selected_step=selected)


def load_params(path: str) -> dict[str, Any]:
  """The `params` pytree (numpy leaves) for `config.init_from`."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"config.init_from={path!r} is not a directory. Give the checkpoint "
        "directory written by a pretraining run (e.g. <workdir>/pretrained), "
        "by scripts/convert_fdp_torch.py, or a fold's checkpoints/ directory.")
  return load_model_variables(path).variables["params"]


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
  """The step numbers under a checkpoint directory, newest first (orbax
  renames `<step>.orbax-checkpoint-tmp-*` once a step is complete)."""
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

  A step can exist and still fail to restore (a file truncated by a full
  disk, an interrupted copy): older steps are tried, newest first.

  Args:
    manager: an `ocp.CheckpointManager`, or the directory one manages (for
      read-only callers).
    restore_fn: `restore_fn(step) -> restored`; any exception it raises marks
      the step as invalid.
    quarantine: move every invalid step newer than the restored one to
      `<directory>/../corrupt_checkpoints/<step>-<time>` and reload the
      manager. A trainer must: orbax silently skips saving a step when a step
      >= it exists, so a corrupt newest step would stay newest (and corrupt).
      Only process 0 moves files; every process reloads.

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

  When one read fails, orbax closes its event loop while tensorstore's other
  reads are in flight; each reports `RuntimeError('Event loop is closed')`
  through `sys.unraisablehook`. Only that exact error is dropped.
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
