"""What a workdir holds: its run identity, one writer at a time, moving runs aside.

A run's result is determined by its *identity*: the resolved config minus the
keys that cannot change a result (logging cadence, paths, output options,
device layout), the dataset builders' versions and build options, and the
model's code version where the model module defines `VERSION`. The identity
is recorded in `<workdir>/run.json` and `folds/<subject>/run.json` when a run
starts; a later run in the same workdir must have the same identity, or it
stops naming the keys that differ (a rerun with another model, seed or step
count would otherwise resume, or skip, the old run's folds and report their
numbers under the new labels).

One writer per workdir: `lock_workdir` takes an advisory `fcntl.flock` on
`<workdir>/.lock` (released by the kernel when the process dies) and writes
the holder's pid and host into it. In a multi-host launch process 0 holds it
and the other processes check that it is held by their own run.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import hashlib
import json
import os
import socket
import time
from typing import Any, Mapping, Sequence

RUN_FILE = "run.json"
LOCK_FILE = ".lock"

# Config keys that cannot change a result: paths, logging and output
# options, input-reading speed, and the device / fold layout (results do not
# depend on it up to float tolerance, and `protocol.folds` only says which
# folds this invocation runs).
IGNORED_KEYS = (
    "input.data_dir", "input.auto_build", "input.read_threads", "input.prefetch",
    "input.workers", "progress", "log_every", "checkpoint_every",
    "keep_checkpoints", "preview_samples", "mesh.data", "mesh.fsdp",
    "mesh.fsdp_min_size", "mesh.folds", "protocol.parallel_folds",
    "protocol.folds",
)


class RunMismatchError(ValueError):
  """The workdir holds a run of another identity; the message names the keys."""


class WorkdirLockedError(ValueError):
  """Another process writes to this workdir."""


# ----------------------------------------------------------------------------
# Identity.


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = _jsonable(v)
  return out


def _jsonable(v: Any) -> Any:
  # Tuples and lists compare equal after a JSON round trip.
  return json.loads(json.dumps(v, default=str))


def config_identity(config: Mapping[str, Any] | Any) -> dict[str, Any]:
  """The flattened config minus `IGNORED_KEYS`."""
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return {k: v for k, v in flatten(d).items()
          if k not in IGNORED_KEYS and not k.startswith(IGNORED_KEYS)}


def dataset_identity(names: Sequence[str], data_dir: str) -> dict[str, Any]:
  """`dataset.<name>.*`: builder version, metadata and recorded build options."""
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  out = {}
  for name in names:
    builder = sources.get_builder(name, data_dir)
    out[f"dataset.{name}.version"] = str(builder.version)
    for k, v in sorted(dict(builder.info.metadata or {}).items()):
      out[f"dataset.{name}.metadata.{k}"] = _jsonable(v)
    for k, v in sources.build_options(builder).items():
      out[f"dataset.{name}.build.{k}"] = _jsonable(v)
  return out


def model_identity(model_name: str) -> dict[str, Any]:
  from mer_jax import models  # pylint: disable=g-import-not-at-top
  version = getattr(models.get_module(model_name), "VERSION", None)
  return {} if version is None else {"model_code_version": str(version)}


def run_identity(config, data_dir: str) -> dict[str, Any]:
  """Everything that determines a run's result, as a flat dict."""
  ident = config_identity(config)
  ident.update(dataset_identity(list(config.input.datasets), data_dir))
  ident.update(model_identity(config.model_name))
  return ident


def fingerprint(identity: Mapping[str, Any]) -> str:
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """`key: old -> new` for every key that differs (missing = '(unset)')."""
  out = []
  # Top-level keys (model_name, seed, num_steps, ...) first: they say most.
  for k in sorted(set(old) | set(new), key=lambda k: ("." in k, k)):
    a, b = old.get(k, "(unset)"), new.get(k, "(unset)")
    if a != b:
      out.append(f"{k}: {a!r} -> {b!r}")
  return out


def _read_json(path: str) -> Any:
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  return checkpoints.read_json(path, "delete it if the run it belongs to is "
                               "not needed, or use another --workdir")


def check_identity(directory: str, identity: Mapping[str, Any], workdir: str,
                   *, legacy_config: str | None = None) -> None:
  """Raises `RunMismatchError` if `directory` holds a run of another identity.

  `directory/run.json` is compared when it exists; otherwise, for runs from
  before identities were recorded, the config in `legacy_config` (a JSON file
  with a "config" entry or a config dict) is compared on config keys only.
  """
  path = os.path.join(directory, RUN_FILE)
  source = path
  if os.path.isfile(path):
    old = _read_json(path).get("identity", {})
    # A key added to base_config() after that run, at its default, changes
    # nothing (defaults keep the old behaviour).
    from mer_jax import config_lib  # pylint: disable=g-import-not-at-top
    defaults = config_identity(config_lib.base_config())
    diff = differences(old, {k: v for k, v in identity.items()
                             if k in old or k not in defaults or v != defaults[k]})
  elif legacy_config and os.path.isfile(legacy_config):
    old = _read_json(legacy_config)
    old = old.get("config", old)
    old = config_identity(old)
    # Keys added to base_config() since that run have their defaults: only
    # the keys it recorded are compared.
    new_cfg = {k: v for k, v in identity.items() if k in old}
    diff = differences(old, new_cfg)
    source = legacy_config
  else:
    return
  if diff:
    shown = diff[:12] + ([f"... and {len(diff) - 12} more"] if len(diff) > 12 else [])
    raise RunMismatchError(
        f"{workdir} holds a run with another setup ({source}); "
        "its checkpoints and results would be reused under the new labels. "
        "Differing keys (old -> new):\n  " + "\n  ".join(shown) +
        f"\nUse a new --workdir, or rerun with --overwrite to move the old run "
        f"aside to {workdir}.replaced-<time>/ (nothing is deleted).")


def write_identity(directory: str, identity: Mapping[str, Any]) -> None:
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.write_json(os.path.join(directory, RUN_FILE), {
      "fingerprint": fingerprint(identity), "identity": dict(identity)})


def check_and_record(workdir: str, identity: Mapping[str, Any],
                     fold_dirs: Sequence[str]) -> None:
  """Refuses a run whose identity differs from the workdir's or a fold's, then
  records it (process 0) in `<workdir>/run.json` and each `<fold>/run.json`."""
  from mer_jax import checkpoints  # pylint: disable=g-import-not-at-top
  check_identity(workdir, identity, workdir,
                 legacy_config=os.path.join(workdir, "config.json"))
  for d in fold_dirs:
    check_identity(d, identity, workdir, legacy_config=os.path.join(
        d, "checkpoints", checkpoints.META_FILE))
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    for d in [workdir, *fold_dirs]:
      if not os.path.isfile(os.path.join(d, RUN_FILE)):
        write_identity(d, identity)


# ----------------------------------------------------------------------------
# Moving a run aside (--overwrite).


def holds_run(workdir: str) -> bool:
  return os.path.isdir(workdir) and any(n != LOCK_FILE for n in os.listdir(workdir))


def move_aside(workdir: str) -> str | None:
  """Moves everything in `workdir` but the lock to `<workdir>.replaced-<time>/`.

  Returns the new folder (None when there was nothing to move). Nothing is
  deleted; the caller should hold the workdir's lock.
  """
  workdir = os.path.abspath(workdir)
  if not holds_run(workdir):
    return None
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  dest = f"{workdir}.replaced-{stamp}"
  n = 1
  while os.path.exists(dest):
    n += 1
    dest = f"{workdir}.replaced-{stamp}-{n}"
  os.makedirs(dest)
  for name in os.listdir(workdir):
    if name != LOCK_FILE:
      os.rename(os.path.join(workdir, name), os.path.join(dest, name))
  return dest


# ----------------------------------------------------------------------------
# One writer per workdir.

_held: dict[str, Any] = {}  # workdir -> open lock file of this process
_checked: set[str] = set()  # workdirs whose lock this (non-0) process checked


def _describe_holder(path: str) -> str:
  try:
    with open(path) as f:
      h = json.load(f)
    return (f"process {h.get('pid')} on host {h.get('host')} (since "
            f"{h.get('started')})")
  except (OSError, ValueError):
    return "another process"


def _prepare_workdir(workdir: str) -> None:
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise OSError(errno.ENOTDIR, f"--workdir {workdir} is a file, not a folder; "
                  "give a folder path (it is created if missing)", workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise OSError(e.errno, f"cannot create --workdir {workdir}: {e.strerror}; "
                  "choose a folder you can write to", workdir) from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise OSError(errno.EACCES, f"--workdir {workdir} is not writable; choose a "
                  "folder you can write to", workdir)


def lock_workdir(workdir: str) -> bool:
  """Takes this process' exclusive lock on `workdir` (creating the folder).

  Raises `WorkdirLockedError` naming the holder's pid and host when another
  process holds it. Re-entrant within one process: returns False when this
  process already held it (the caller then must not release it).
  """
  workdir = os.path.abspath(workdir)
  if workdir in _held:
    return False
  _prepare_workdir(workdir)
  path = os.path.join(workdir, LOCK_FILE)
  f = open(path, "a+")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    f.close()
    if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
      raise WorkdirLockedError(
          f"--workdir {workdir} is in use by {_describe_holder(path)} "
          f"({path}). Wait for that run to end, or use another --workdir.") from None
    raise
  f.seek(0)
  f.truncate()
  json.dump({"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
  f.flush()
  _held[workdir] = f
  return True


def unlock_workdir(workdir: str) -> None:
  _checked.discard(os.path.abspath(workdir))
  f = _held.pop(os.path.abspath(workdir), None)
  if f is not None:
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


def lock_workdir_multihost(workdir: str) -> bool:
  """`lock_workdir` for a (possibly) multi-process run.

  Process 0 takes the lock and writes a token shared with the other processes
  (a broadcast); they check that the lock file is held and carries their
  run's token, so a second launch on the same workdir is refused on every
  host.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return lock_workdir(workdir)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(workdir)
  error, acquired = "", False
  if jax.process_index() == 0:
    if workdir in _held:  # already shared (scripts/main.py, then the trainer)
      return False
    try:
      acquired = lock_workdir(workdir)
    except (OSError, ValueError) as e:
      error = str(e)
  elif workdir in _checked:
    return False
  token = int(multihost_utils.broadcast_one_to_all(
      np.int32(0 if error else (os.getpid() * 7919 + int(time.time())) % 2**31 or 1)))
  if token == 0:  # process 0 failed: every process stops with its reason
    raise WorkdirLockedError(error or f"--workdir {workdir}: process 0 could not "
                             "take the workdir lock (see its output).")
  path = os.path.join(workdir, LOCK_FILE)
  if jax.process_index() == 0:
    f = _held[workdir]
    f.seek(0)
    holder = json.load(f)
    holder["run_token"] = token
    f.seek(0)
    f.truncate()
    json.dump(holder, f)
    f.flush()
  multihost_utils.sync_global_devices("mer_jax_workdir_lock")
  if jax.process_index() != 0:
    try:
      with open(path) as f:
        holder = json.load(f)
    except (OSError, ValueError):
      holder = {}
    if holder.get("run_token") != token:
      raise WorkdirLockedError(
          f"--workdir {workdir}: the lock {path} is not held by this run's "
          f"process 0 (found {holder or 'nothing'}); is the workdir on a "
          "filesystem all hosts share?")
    _checked.add(workdir)
  return acquired
