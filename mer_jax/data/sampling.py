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
      L = offset - onset + 1 (needs L >= T).
  """
  if n <= 0:
    raise ValueError("clip has no frames")
  onset = int(np.clip(onset, 0, n - 1))
  offset = int(np.clip(offset, onset, n - 1))
  zero = np.zeros(num_frames, np.float32)
  if mode == "uniform":
    idx = np.rint(sample_positions(onset, offset, num_frames)).astype(np.int64)
    return idx, idx, zero
  if mode == "interpolate":
    pos = sample_positions(onset, offset, num_frames)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, offset)
    return lo, hi, (pos - lo).astype(np.float32)
  if mode == "stride":
    length = offset - onset + 1
    if length < num_frames:
      raise ValueError(f"stride sampling needs >= {num_frames} frames between "
                       f"onset and offset, got {length}")
    idx = onset + np.arange(num_frames) * (length // num_frames)
    return idx, idx, zero
  raise ValueError(f"Unknown temporal sampling mode {mode!r}; use one of {MODES}")


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
