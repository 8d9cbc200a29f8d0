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

Raw video (`mer_jax.inference` users, scripts/predict.py): `HogDetector`
gives every face of a frame as the aligner finds it, `pick_face` the one to
follow, `align_clip` a raw clip aligned as a builder aligns one;
`mer_jax.face_track` follows a face over a long video.

dlib and face_recognition_models are optional: `pip install 'mer-jax[faces]'`.
"""

from __future__ import annotations

import dataclasses
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
    rgb, f = _shrink(np.ascontiguousarray(rgb, dtype=np.uint8), self.detect_max_side)
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


def _shrink(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
  """`rgb` area-downsampled so its longer side is <= `max_side`, and the factor."""
  import cv2  # pylint: disable=g-import-not-at-top
  f = min(1.0, max_side / max(rgb.shape[:2]))
  if f < 1.0:
    rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)),
                     interpolation=cv2.INTER_AREA)
  return rgb, f


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


# ----------------------------------------------------------------------------
# Faces in raw video: every detection of a frame (`HogDetector`), the one to
# follow (`pick_face`), and a raw clip aligned as a builder aligns one.


class FaceError(ValueError):
  """No face, or several faces, where one was expected."""


class SeveralFacesError(FaceError):
  """Several faces and no rule (largest / index) to pick one."""


@dataclasses.dataclass(frozen=True)
class Detection:
  """One detected face. `box` (left, top, right, bottom) and `landmarks`
  `[5, 2]` (x, y, dlib 5-point order) in source pixels."""
  box: tuple[float, float, float, float]
  score: float
  landmarks: np.ndarray

  @property
  def centre(self) -> np.ndarray:
    return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

  @property
  def width(self) -> float:
    return float(self.box[2] - self.box[0])

  @property
  def area(self) -> float:
    return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))

  def describe(self) -> str:
    return f"{tuple(round(v) for v in self.box)} score {self.score:.2f}"


class HogDetector:
  """dlib HOG faces + 5 landmarks, as `FaceAligner` finds them.

  The HOG pass runs on a copy whose longer side is <= `max_side` (cost grows
  with the area: 90-225 ms per frame at 640-800 px, ~25 ms at 320 px); the
  landmarks are always fitted at the builders' scale (longer side <=
  `FaceAligner`'s 800), so with `max_side=800` (the default) a detection is
  exactly the builders' and a smaller `max_side` only moves the box.
  """

  def __init__(self, max_side: int = 800):
    self.max_side = int(max_side)
    self.aligner = FaceAligner()
    self._hog, self._sp5 = self.aligner._hog, self.aligner._sp5  # pylint: disable=protected-access

  def __call__(self, rgb: np.ndarray) -> list[Detection]:
    """All HOG detections of a uint8 `[H, W, 3]` frame, best score first."""
    import dlib  # pylint: disable=g-import-not-at-top
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    ref, fr = _shrink(rgb, self.aligner.detect_max_side)   # builders' scale
    small, fs = (ref, fr) if self.max_side >= self.aligner.detect_max_side else (
        _shrink(rgb, self.max_side))
    boxes, scores, _ = self._hog.run(small, 1, 0.0)
    out = []
    for r, s in zip(boxes, scores):
      box = tuple(v / fs for v in (r.left(), r.top(), r.right(), r.bottom()))
      if fs == fr:
        rect = r
      else:
        rect = dlib.rectangle(*(int(round(v * fr)) for v in box))
      shape = self._sp5(ref, rect)
      pts = np.array([[p.x, p.y] for p in shape.parts()], np.float64) / fr
      out.append(Detection(box=box, score=float(s), landmarks=pts))
    return sorted(out, key=lambda d: -d.score)


def pick_face(dets: Sequence[Detection], *, min_face_score: float = 0.5,
              largest_face: bool = False, face_index: int | None = None,
              where: str = "") -> Detection | None:
  """Chooses the face to follow among one frame's detections.

  Detections scoring below `min_face_score` do not count as other faces (HOG
  gives low-score false positives); with at most one strong face the
  highest-scoring detection is taken, as the builders do.

  Args:
    dets: detections, best score first.
    min_face_score, largest_face: see above; `largest_face` takes the
      largest strong face.
    face_index: take the K-th strong face from the left (0-based).
    where: names the frame in error messages.

  Returns:
    The chosen detection, or None (no face, or no K-th face).

  Raises:
    SeveralFacesError: several strong faces and neither rule given.
  """
  if not dets:
    return None
  strong = [d for d in dets if d.score >= min_face_score]
  if face_index is not None:
    ordered = sorted(strong or dets[:1], key=lambda d: d.centre[0])
    return ordered[face_index] if face_index < len(ordered) else None
  if len(strong) > 1:
    if largest_face:
      return max(strong, key=lambda d: d.area)
    boxes = ", ".join(d.describe() for d in sorted(strong, key=lambda d: d.centre[0]))
    raise SeveralFacesError(
        f"{len(strong)} faces found{where} ({boxes}, left to right); the model "
        "expects one. Pass --largest_face (largest_face=True) to follow the "
        f"largest, --face_index K (0..{len(strong) - 1}, left to right) to "
        "follow one, or crop the video.")
  return dets[0]


def transform_from_landmarks(pts: np.ndarray) -> np.ndarray:
  """The builders' normalised `[2, 3]` similarity transform from 5 landmarks."""
  return similarity_from_eyes(*eye_centres(np.asarray(pts)),
                              eye_dist=EYE_DIST, eye_y=EYE_Y)


@functools.lru_cache(maxsize=1)
def _cached_detector() -> HogDetector:
  """One detector per process: loading the dlib models takes a while."""
  return HogDetector()


def face_transform(rgb: np.ndarray, *, largest_face: bool = False,
                   min_face_score: float = 0.5,
                   face_index: int | None = None) -> np.ndarray:
  """The builders' normalised `[2, 3]` similarity transform for one frame.

  With one face this equals `FaceAligner.transform` (the highest-scoring
  HOG box), from a single detection pass. Detections
  scoring below `min_face_score` are not counted as other faces: HOG gives
  low-score false positives, which the builders ignore the same way.

  Raises:
    FaceError: no face, or more than one face scoring >= `min_face_score`
      and neither `largest_face` nor `face_index` picks one.
  """
  face = pick_face(_cached_detector()(rgb), min_face_score=min_face_score,
                   largest_face=largest_face, face_index=face_index)
  if face is None:
    raise FaceError("no face found")
  return transform_from_landmarks(face.landmarks)


def align_clip(frames: np.ndarray | Sequence[np.ndarray], size: int, *,
               detect_frame: int = 0, largest_face: bool = False,
               min_face_score: float = 0.5) -> np.ndarray:
  """Aligns a raw clip as the TFDS builders do.

  One transform from the face on `detect_frame` (the builders use the onset
  frame), applied to every frame: re-detecting per frame would add jitter
  larger than a micro-expression.

  Args:
    frames: uint8 `[N, H, W, 3]` RGB video frames.
    size: output side (the training config's `input.size`).
    detect_frame: index of the frame to detect the face on.
    largest_face, min_face_score: see `face_transform`.

  Returns:
    uint8 `[N, size, size, 3]`.
  """
  m = face_transform(np.asarray(frames[detect_frame]), largest_face=largest_face,
                     min_face_score=min_face_score)
  return np.stack(apply(frames, m, size))
