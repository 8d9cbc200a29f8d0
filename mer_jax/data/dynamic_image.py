"""Dynamic-image target of the official FDP code (data.py + train.py).

Approximate rank pooling (Bilen et al.) of the grey [0, 1] frames, min-max
scaled per clip to uint8 with truncation (cv2.normalize NORM_MINMAX then
`.astype('uint8')`), then / 255 as train.py does. Bit-equal to the official
cv2 code on the reference clips (checked by scripts/check_fdp_reference.py).
"""

from __future__ import annotations

import numpy as np

from mer_jax.data import targets


def rank_pool_weights(num_frames: int) -> np.ndarray:
  """fw[n] = sum_{i=n+1..T} (2i - T - 1) / i, float64 [T] (official loop)."""
  fw = np.zeros(num_frames)
  for n in range(num_frames):
    ci = np.arange(n, num_frames) + 1
    fw[n] = np.sum(((2 * ci) - num_frames - 1) / ci)
  return fw


def to_grey_uint8(clip_uint8: np.ndarray) -> np.ndarray:
  """[T, H, W, C] uint8 -> [T, H, W] uint8 grey (PIL 'L' for C=3).

  A float clip (augmented frames in [0, 255]) gives float32 grey with the
  same luma weights, unrounded.
  """
  clip = np.asarray(clip_uint8)
  if clip.ndim == 3:
    return clip
  if clip.shape[-1] == 1:
    return clip[..., 0]
  if clip.shape[-1] != 3:
    raise ValueError(f"Expected 1 or 3 channels, got shape {clip.shape}")
  if clip.dtype != np.uint8:
    w = np.array([19595, 38470, 7471], np.float32) / np.float32(65536)
    return (clip.astype(np.float32) @ w).astype(np.float32)
  # PIL Image.convert('L') integer formula (ITU-R 601-2 luma, rounded).
  c = clip.astype(np.uint32)
  grey = (c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471
          + 0x8000) >> 16
  return grey.astype(np.uint8)


def dynamic_image_raw(gray01: np.ndarray) -> np.ndarray:
  """Unnormalised dynamic image: sum_n fw[n] * g_n, float64 [H, W].

  Args:
    gray01: float32 [T, H, W] grey frames in [0, 1] (ToTensor = uint8 / 255).
  """
  t = gray01.shape[0]
  fw = rank_pool_weights(t)
  # Same operations (and so the same rounding) as the official
  # `np.sum(frames * fw.reshape(T, 1, 1, 1), axis=0)`.
  y = np.sum(gray01[..., None].astype(np.float32) * fw.reshape(-1, 1, 1, 1),
             axis=0)
  return y[..., 0]


def dynamic_image_uint8(gray01: np.ndarray) -> np.ndarray:
  """cv2.normalize(raw, None, 0, 255, NORM_MINMAX).astype('uint8'), [H, W]."""
  y = dynamic_image_raw(gray01)
  smin, smax = float(y.min()), float(y.max())
  scale = 255.0 * (1.0 / (smax - smin)
                   if smax - smin > np.finfo(np.float64).eps else 0.0)
  shift = 0.0 - smin * scale
  return (y * scale + shift).astype(np.uint8)  # truncation, not rounding


@targets.register("dynamic_image")
def dynamic_image(clip_uint8: np.ndarray) -> np.ndarray:
  """Official FDP dynamic-image target.

  Args:
    clip_uint8: uint8 [T, H, W, C] sampled clip (C = 1 or 3), or the
      augmented clip as float32 in [0, 255] (the pipeline computes targets
      after augmentation, so they match the frames the model sees).

  Returns:
    float32 [H, W] in [0, 1]: the uint8 dynamic image / 255.
  """
  grey = to_grey_uint8(clip_uint8)
  gray01 = grey.astype(np.float32) / np.float32(255.0)  # ToTensor
  di = dynamic_image_uint8(gray01)
  return di.astype(np.float32) / np.float32(255.0)
