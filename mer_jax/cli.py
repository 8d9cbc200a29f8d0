"""One `error: ...` line per failure at a script's entry point.

Scripts call `run_main(main)` (or `report_error(e)` in their own handler):
input the user can fix (a file that is missing, damaged or unwritable, a
config value, a dataset that needs building, checkpoints that do not
restore) prints one line naming the file and what to do and exits 2; any
other error prints its type and a hint, and exits 1. `--debug` on the
command line (or MER_JAX_DEBUG=1) shows the full traceback instead.
Imports nothing heavy: a script that fails before JAX loads stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable


def debug_requested() -> bool:
  return "--debug" in sys.argv[1:] or os.environ.get("MER_JAX_DEBUG") == "1"


def _user_errors() -> tuple[type, ...]:
  errors: list[type] = [OSError, ValueError, FloatingPointError]
  # Only the modules already loaded: importing them here would cost seconds.
  for module, name in (("mer_jax.data.sources", "DatasetError"),
                       ("mer_jax.checkpoints", "CheckpointRestoreError")):
    cls = getattr(sys.modules.get(module), name, None)
    if cls is not None:
      errors.append(cls)
  return tuple(errors)


def describe(e: BaseException) -> str:
  """The message, with the file named where the exception carries one."""
  if isinstance(e, json.JSONDecodeError):
    return f"a JSON file is damaged (truncated or not JSON): {e}"
  if isinstance(e, OSError):
    msg = str(e)
    name = e.filename
    if name is not None and str(name) not in msg:
      msg = f"{msg} ({name})"
    if e.strerror and not e.filename and "No space left" in msg:
      msg += "; free disk space and run again"
    return msg
  if type(e).__name__ == "CheckpointRestoreError":
    return (f"{e}\nThe checkpoints are damaged: move the fold's checkpoints/ "
            "folder away to retrain it, or use another --workdir.")
  return str(e)


def report_error(e: BaseException) -> int:
  """Prints one `error: ...` for `e`; returns the exit status (2 or 1)."""
  if isinstance(e, _user_errors()):
    print(f"error: {describe(e)}", file=sys.stderr, flush=True)
    return 2
  print(f"error: {type(e).__name__}: {describe(e)}\n(run again with --debug "
        "or MER_JAX_DEBUG=1 for the traceback)", file=sys.stderr, flush=True)
  return 1


def run_main(main: Callable[..., Any], *args: Any, debug: bool = False) -> int:
  """`main(*args)` as an exit status; errors become one line (see module doc).

  `debug` (a parsed `--debug` flag, for in-process callers whose argv is not
  `sys.argv`) shows the traceback, as `--debug` in `sys.argv` does.
  """
  try:
    rc = main(*args)
  except SystemExit:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if debug or debug_requested():
      raise
    return report_error(e)
  return rc if isinstance(rc, int) else 0
