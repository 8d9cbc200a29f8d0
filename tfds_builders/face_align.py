"""Deterministic face alignment for micro-expression clips.

One similarity transform per clip, computed on the ONSET frame and applied
to every frame: micro-expressions are a few pixels of motion, so per-frame
re-detection would add more jitter than the head moves in a clip.

Pipeline (version `ALIGN_VERSION`, stored in each dataset's metadata):
  1. dlib HOG detector, `run(rgb, 1, 0.0)` (1x upsampling), keep the highest-
     scoring box (low-score false positives occur).
  2. 5-point landmarks, `shape_predictor_5_face_landmarks.dat` (CC0) from the
     `face_recognition_models` package; eye centre = mean of its two corners.
  3. Rotate so the eyes are level, scale so the inter-ocular distance is
     `EYE_DIST` of the output width, put the eye midpoint at
     (0.5, `EYE_Y`) of the output: forehead to chin with margin.
  4. Warp every frame with `cv2.warpAffine` (bilinear, replicated border) at
     about the source resolution, then `INTER_AREA` down to `size`.

Transforms are "normalised": they map source pixel coordinates to unit
output coordinates [0, 1]^2, so one transform serves every output size.

dlib and face_recognition_models are optional: `pip install 'mer-jax[faces]'`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Sequence

import numpy as np

ALIGN_VERSION = "dlib-hog1-max800-sp5-eyes0.30y0.38-v1"
EYE_DIST = 0.30
EYE_Y = 0.38
CENTER = "center"  # sentinel transform: largest centred square (pre-cropped releases)

_INSTALL_HINT = (
    "Face alignment needs dlib and the CC0 5-point landmark model from "
    "face_recognition_models: pip install 'mer-jax[faces]' (i.e. dlib-bin and "
    "face_recognition_models), or build with alignment='none' for releases "
    "that are already cropped.")


@functools.lru_cache(maxsize=1)
def _dlib_models():
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(_INSTALL_HINT) from e
  # Located as a package file, not imported: face_recognition_models'
  # __init__ imports pkg_resources, which setuptools >= 81 no longer ships.
  spec = importlib.util.find_spec("face_recognition_models")
  path = None if spec is None or not spec.submodule_search_locations else (
      os.path.join(list(spec.submodule_search_locations)[0], "models",
                   "shape_predictor_5_face_landmarks.dat"))
  if path is None or not os.path.exists(path):
    raise ImportError(_INSTALL_HINT)
  sp5 = dlib.shape_predictor(path)
  return dlib, dlib.get_frontal_face_detector(), sp5


def models_available() -> bool:
  """True when dlib and face_recognition_models import (for tests / callers)."""
  try:
    _dlib_models()
    return True
  except ImportError:
    return False


class FaceAligner:
  """Detects a face + 5 landmarks and builds the clip's similarity transform."""

  def __init__(self, eye_dist: float = EYE_DIST, eye_y: float = EYE_Y,
               detect_max_side: int = 800):
    self.eye_dist = eye_dist
    self.eye_y = eye_y
    # SAMM frames are 2040x1088: HOG with 1x upsampling at full size takes
    # seconds, so detect on a copy whose longer side is <= detect_max_side.
    self.detect_max_side = detect_max_side
    self._dlib, self._hog, self._sp5 = _dlib_models()

  def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
    """5 landmarks `[5, 2]` (x, y) of the best-scoring face, or None."""
    import cv2  # pylint: disable=g-import-not-at-top
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    f = min(1.0, self.detect_max_side / max(rgb.shape[:2]))
    if f < 1.0:
      rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)),
                       interpolation=cv2.INTER_AREA)
    boxes, scores, _ = self._hog.run(rgb, 1, 0.0)
    if not boxes:
      return None
    best = int(np.argmax(scores))
    shape = self._sp5(rgb, boxes[best])
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64) / f

  def eyes(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(image-left eye centre, image-right eye centre), each `[2]` (x, y)."""
    pts = self.landmarks(rgb)
    if pts is None:
      return None
    return eye_centres(pts)

  def transform(self, rgb: np.ndarray) -> np.ndarray | None:
    """The normalised `[2, 3]` transform for this (onset) frame, or None if no face."""
    e = self.eyes(rgb)
    if e is None:
      return None
    return similarity_from_eyes(*e, eye_dist=self.eye_dist, eye_y=self.eye_y)


def eye_centres(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Eye centres from dlib 5-point landmarks (0-1 one eye's corners, 2-3 the other's)."""
  a = pts[0:2].mean(0)
  b = pts[2:4].mean(0)
  return (a, b) if a[0] <= b[0] else (b, a)


def similarity_from_eyes(left: np.ndarray, right: np.ndarray,
                         eye_dist: float = EYE_DIST,
                         eye_y: float = EYE_Y) -> np.ndarray:
  """`[2, 3]` map: source px -> unit coords with eyes level at `eye_y`, `eye_dist` apart."""
  d = np.asarray(right, np.float64) - np.asarray(left, np.float64)
  dist = float(np.hypot(*d))
  if dist < 1e-6:
    raise ValueError("Degenerate eye landmarks")
  s = eye_dist / dist
  c, si = s * d[0] / dist, s * d[1] / dist   # s * (cos, sin) of the eye-line angle
  # Rotation by -angle, scaled: [[c, si], [-si, c]].
  rot = np.array([[c, si], [-si, c]])
  mid = (np.asarray(left, np.float64) + np.asarray(right, np.float64)) / 2
  t = np.array([0.5, eye_y]) - rot @ mid
  return np.concatenate([rot, t[:, None]], 1)


def center_matrix(h: int, w: int) -> np.ndarray:
  """Normalised transform of the largest centred square of an `h x w` frame."""
  side = min(h, w)
  x0, y0 = (w - side) / 2, (h - side) / 2
  return np.array([[1 / side, 0, -x0 / side], [0, 1 / side, -y0 / side]])


def resize(frame: np.ndarray, size: int) -> np.ndarray:
  """Resize only (aspect not kept): `[H, W, 3]` -> `[size, size, 3]` uint8."""
  import cv2  # pylint: disable=g-import-not-at-top
  h, w = frame.shape[:2]
  interp = cv2.INTER_AREA if (h >= size and w >= size) else cv2.INTER_LINEAR
  return cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=interp)


def apply(frames: Sequence[np.ndarray], matrix, size: int) -> list[np.ndarray]:
  """Applies ONE normalised transform to every frame: `[H, W, 3]` -> `[size, size, 3]`.

  Warps at about the source face resolution (capped at 4x `size`) and then
  area-downsamples, which avoids the aliasing of a direct large-factor warp.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  out = []
  for f in frames:
    m = (center_matrix(*f.shape[:2]) if isinstance(matrix, str) and
         matrix == CENTER else np.asarray(matrix, np.float64))
    scale = float(np.hypot(m[0, 0], m[0, 1]))   # unit per source px
    canvas = int(np.clip(round(1.0 / scale), size, 4 * size))
    a = m * canvas
    warped = cv2.warpAffine(np.ascontiguousarray(f), a, (canvas, canvas),
                            flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if canvas != size:
      warped = cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)
    out.append(warped)
  return out


def to_pixels(matrix: np.ndarray, size: int) -> np.ndarray:
  """The `[2, 3]` source px -> output px map for output `size` (for checks)."""
  return np.asarray(matrix, np.float64) * size
