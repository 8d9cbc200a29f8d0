"""The one step loop: a fold, a fold group and MA2MI pretraining run it.

`train_loop` owns what every training run shares: the progress bar, the
logging cadence (metrics fetched from the device every `log_every` steps and
at the last step), the stop on a non-finite loss, the per-step callback
where the caller selects, checkpoints and draws, and a quiet close of async
checkpoint saves when the run stops on an error.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

# One logged window of fetched metrics: [(step, {name: value})], steps 1-based.
HostMetrics = list[tuple[int, dict[str, Any]]]


def check_finite(host_pending: HostMetrics, names: Sequence[str],
                 checkpoint_dirs: Sequence[str]) -> None:
  """Raises FloatingPointError on the first non-finite loss.

  A loss of shape `[K]` (K stacked folds) names run `names[k]`.
  """
  for step, m in host_pending:
    loss = np.asarray(m["loss"]).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
      k = int(bad[0])
      raise FloatingPointError(
          f"Non-finite loss ({loss[k]}) at step {step} of {names[k]}. Lower "
          "config.schedule.lr or check the input data; the last checkpoint "
          f"is in {checkpoint_dirs[k]}.")


def close_quietly(managers: Sequence[Any], writers: Sequence[Any] = ()) -> None:
  """On a stop (NaN, Ctrl-C, full disk): let in-flight async saves end, quietly.

  Without this the interpreter exits while orbax's save threads still run,
  and each prints its traceback after the one-line error.
  """
  for mngr in managers:
    try:
      mngr.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      log.debug("checkpoint save interrupted", exc_info=True)
  for x in (*managers, *writers):
    try:
      x.close()
    except Exception:  # pylint: disable=broad-except
      log.debug("closing after a stop", exc_info=True)


def stack(trees: Sequence[Any], xnp=jnp) -> Any:
  """Trees of equal structure -> one tree of `[K, ...]` leaves (`xnp.stack`)."""
  return jax.tree.map(lambda *xs: xnp.stack(xs), *trees)


def train_loop(step_fn: Callable, state: Any, batches: Iterator[Any], *,
               start: int, num_steps: int, log_every: int,
               log_fn: Callable[[HostMetrics], dict[str, str]],
               after_step: Callable[[int, Any, Any, tuple], None] | None = None,
               on_stop: Callable[[], None] | None = None,
               names: Sequence[str] = ("the run",),
               checkpoint_dirs: Sequence[str] = ("its checkpoint directory",),
               pending: HostMetrics | None = None,
               desc: str = "", progress: bool = True) -> Any:
  """Runs steps `start .. num_steps - 1`; returns the last state.

  Args:
    step_fn: `(state, batch) -> (state, metrics, *outputs)`, jitted; metrics
      hold a "loss" (`[]`, or `[K]` for K stacked folds).
    state: the state at step `start` (a donated step consumes it).
    batches: device batches, the first one for step `start`; pulled lazily,
      one per step.
    log_fn: called every `log_every` steps and after the last with the
      fetched metrics since the previous call `[(step, metrics)]` (already
      checked finite); returns the progress bar's postfix.
    after_step: `(done, state, batch, outputs)` after every step (`done`
      1-based): selection, checkpoints, images at the caller's cadence; it
      may read `pending`, the metrics not yet logged.
    on_stop: called when a step or callback raises (then the error goes on).
    names, checkpoint_dirs: what a non-finite loss error names (one per
      stacked run).
    pending: metrics carried over from a resumed run (the list is used and
      updated in place, so `after_step` can checkpoint it).
  """
  pending = [] if pending is None else pending
  bar = tqdm(range(start, num_steps), initial=start, total=num_steps, desc=desc,
             disable=not progress or jax.process_index() != 0,
             dynamic_ncols=True)
  try:
    for step in bar:
      batch = next(batches)
      state, metrics, *outputs = step_fn(state, batch)
      done = step + 1
      pending.append((done, metrics))
      if done % log_every == 0 or done == num_steps:
        host = jax.device_get([m for _, m in pending])
        host_pending = [(s, m) for (s, _), m in zip(pending, host)]
        pending.clear()
        check_finite(host_pending, names, checkpoint_dirs)
        bar.set_postfix(log_fn(host_pending))
      if after_step is not None:
        after_step(done, state, batch, tuple(outputs))
  except BaseException:
    if on_stop is not None:
      on_stop()
    raise
  return state
