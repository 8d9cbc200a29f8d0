"""Temporal sampling of a clip to a fixed number of frames `T`."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

MODES = ("uniform", "interpolate", "stride")


def sample_positions(onset: int, offset: int, num_frames: int) -> np.ndarray:
  """`num_frames` evenly spaced float positions from onset to offset inclusive."""
  if offset < onset:
    raise ValueError(f"offset {offset} < onset {onset}")
  return np.linspace(onset, offset, num_frames)


def frame_plan(n: int, onset: int, offset: int, num_frames: int,
               mode: str = "uniform") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Which frames make the `T` output frames: `(lo [T], hi [T], weight [T])`.

  Output frame t = (1 - weight[t]) * frames[lo[t]] + weight[t] * frames[hi[t]].
  Modes:
    uniform: nearest frames at evenly spaced positions from onset to offset
      (repeats frames when the clip is shorter than T).
    interpolate: linear interpolation between neighbouring frames at the same
      positions (temporal interpolation for short clips).
    stride: the official FDP rule, `frames[onset + i * (L // T)]` for
      L = offset - onset + 1. The official code skips clips with L < T; here
      they take the uniform rule (repeated frames) so that no clip is lost.
  """
  if n <= 0:
    raise ValueError("clip has no frames")
  onset = int(np.clip(onset, 0, n - 1))
  offset = int(np.clip(offset, onset, n - 1))
  zero = np.zeros(num_frames, np.float32)
  length = offset - onset + 1
  if mode == "stride" and length >= num_frames:
    idx = onset + np.arange(num_frames) * (length // num_frames)
    return idx, idx, zero
  if mode in ("uniform", "stride"):
    idx = np.rint(sample_positions(onset, offset, num_frames)).astype(np.int64)
    return idx, idx, zero
  if mode == "interpolate":
    pos = sample_positions(onset, offset, num_frames)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, offset)
    return lo, hi, (pos - lo).astype(np.float32)
  raise ValueError(f"Unknown temporal sampling mode {mode!r}; use one of {MODES}")


def plan_positions(plan) -> np.ndarray:
  """The clip time (in frames, float) each output frame of a plan shows, `[T]`.

  `lo + weight * (hi - lo)`: the frame index itself for uniform and stride
  sampling, the interpolated position for interpolate.
  """
  lo, hi, w = plan
  return lo + w.astype(np.float64) * (hi - lo)


def apex_index(n: int, onset: int, apex: int, offset: int, num_frames: int,
               mode: str = "uniform") -> int:
  """The output frame `t` in `0..T-1` nearest to the apex, or -1.

  Arguments are `frame_plan`'s plus the record's `apex` (an index into the
  clip's frames, like onset/offset; onset/offset are clipped the same way).
  Returns -1 when the apex is unknown (negative) or outside the sampled span
  `[onset, offset]`. Otherwise the `t` whose sampled time is nearest to the
  apex: the frame index for uniform and stride, the interpolated position
  for interpolate (`plan_positions`). Ties are broken by the unrounded
  evenly spaced position (uniform: a short clip's repeated apex frame, or two
  frames equally far, go to the sample whose nominal time is nearest), then
  by the earliest `t`. With stride sampling an apex past the last sampled
  frame maps to T-1.
  """
  if n <= 0:
    return -1
  onset = int(np.clip(onset, 0, n - 1))
  offset = int(np.clip(offset, onset, n - 1))
  apex = int(apex)
  if apex < 0 or apex < onset or apex > offset:
    return -1
  plan = frame_plan(n, onset, offset, num_frames, mode)
  sampled = plan_positions(plan)
  nominal = (sampled if mode == "stride"
             else sample_positions(onset, offset, num_frames))
  # Rounded so that float noise (float32 weights) cannot break a tie.
  key1 = np.round(np.abs(sampled - apex), 6)
  key2 = np.round(np.abs(nominal - apex), 6)
  return int(np.lexsort((np.arange(num_frames), key2, key1))[0])


def gather(get_frame: Callable[[int], np.ndarray], plan) -> np.ndarray:
  """Builds `[T, H, W, C]` from a plan, reading each needed frame once."""
  lo, hi, w = plan
  cache = {int(i): get_frame(int(i)) for i in np.unique(np.concatenate([lo, hi]))}
  if not np.any(w):
    return np.stack([cache[int(i)] for i in lo])
  a = np.stack([cache[int(i)] for i in lo]).astype(np.float32)
  b = np.stack([cache[int(i)] for i in hi]).astype(np.float32)
  w = w.reshape(-1, *([1] * (a.ndim - 1)))
  return np.clip(np.rint((1 - w) * a + w * b), 0, 255).astype(np.uint8)


def sample_clip(frames: Sequence[np.ndarray], onset: int, offset: int,
                num_frames: int, mode: str = "uniform") -> np.ndarray:
  """Samples `[T, H, W, C]` from decoded `frames` `[N, H, W, C]` (see frame_plan)."""
  plan = frame_plan(len(frames), onset, offset, num_frames, mode)
  return gather(lambda i: np.asarray(frames[i]), plan)
