"""Synthesis of micro-expression clips from committed face crops (numpy + cv2).

This module holds everything behind the `synthetic_me` builder (and the
face / warp primitives `synthetic_macro` reuses) but nothing TFDS-specific,
so the check script and tests can render clips cheaply.

How a clip is made (all sizes in pixels of the 112 px internal resolution):

1. Subject: its own aligned 128 px crop in `faces.npz` (no two subjects share
   a crop), passed through the subject's fixed identity transform
   (`SubjectSpec`: mirror, face-shape warp, zoom, skin tone, gamma,
   illumination gradient) and the subject's own facial geometry: a smooth
   warp that moves brow height, inner brows, eye spacing, mouth width,
   mouth-corner height, nostrils and nose width (`GEOMETRY_BUMPS`), with
   coefficients ~ N(0, 2 px) drawn once per subject (`subject_geometry`).
2. Clip geometry (new in 2.0): the same geometry features move again per
   clip, coefficients ~ N(0, 3 px) clipped to +-6 px (`clip_geometry`), i.e.
   by at least the expression amplitude (1.5-3 px). The neutral face of a
   clip therefore already has its brows, mouth corners and nose up or down
   by as much as an expression moves them: a single frame does not tell the
   class, only the change over time does.
3. Clip pose: a random small similarity transform (+-4 deg, +-5 %, +-3 px),
   so absolute feature positions carry no class information.
4. AU motion: a smooth displacement field, a sum of Gaussian bumps at the
   class' landmarks (`_AU_BUMPS`), scaled so the largest displacement is the
   clip's amplitude A ~ U(1.5, 3.0) px at apex, with random left/right
   asymmetry and bump width. Its time course is a sin^2 rise from `onset` to
   `apex` and a cos^2 fall to `offset` (0 at onset/offset, 1 at apex).
5. Head jitter: a linear drift of up to 1 px over the clip plus 0.1 px
   per-frame tremor, applied with the geometry and AU fields in one
   `cv2.remap` per frame.
6. Sensor: a per-frame gain flicker (0.5 %) and Gaussian noise (sigma
   U(1, 2.5) grey levels), then quantisation to uint8; for sizes other than
   112 the frames are area-resized afterwards, so every config holds the same
   clips.

Clip timing (at `FPS` = 30): `T` ~ U{24..40} frames, `offset - onset` ~
U{9..15} frames (0.30-0.50 s, a micro-expression), at least 4 neutral frames
before the onset and after the offset, apex at 35-60 % of the way.

Determinism: every random draw of clip `c` of subject `s` comes from
`np.random.default_rng([seed, s, c, stream])` (labels per subject from
`[seed, s, 2**20]`; subject geometry from `[2**21, s]`, the same for every
seed: a subject is one identity), so any split can be rendered alone and the
same seed gives identical frames.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable, Sequence

import cv2
import numpy as np

CLASS_NAMES = ("brow_raise", "brow_lower", "lip_corner_pull",
               "lip_corner_depress", "nose_wrinkle")
ACTION_UNITS = ("AU1+AU2", "AU4", "AU12", "AU15", "AU9")
FPS = 30.0
INTERNAL_SIZE = 112
FACES_PATH = os.path.join(os.path.dirname(__file__), "faces.npz")

_T_RANGE = (24, 40)          # frames per clip, inclusive
_DURATION_RANGE = (9, 15)    # onset -> offset frames, inclusive (<= 0.5 s)
_MIN_NEUTRAL = 4             # neutral frames before onset and after offset
AMPLITUDE_RANGE = (1.5, 3.0)  # px at apex, 112 px frames
# Geometry coefficient spreads, px at 112 (see module doc). The per-clip
# spread is the largest expression amplitude, so identity geometry varies by
# at least as much as an expression moves a feature.
CLIP_GEOMETRY_SIGMA = 3.0
CLIP_GEOMETRY_MAX = 6.0
SUBJECT_GEOMETRY_SIGMA = 2.0
SUBJECT_GEOMETRY_MAX = 4.0
_LABEL_STREAM = 2**20        # rng stream id for the per-subject label order
_IDENTITY_STREAM = 2**21     # rng stream id for the per-subject geometry


@dataclasses.dataclass(frozen=True)
class SubjectSpec:
  """A synthetic identity: a source crop and a fixed identity transform.

  Attributes:
    name: subject id, e.g. 'sub01'.
    face: index into faces.npz `images`.
    mirror: flip left-right (landmark sides swap).
    jaw: lower-face width change per face height (+ widens the jaw).
    stretch: vertical scale about the eye line (face length).
    zoom: overall scale about the eye line.
    gain: RGB multipliers (skin tone / white balance).
    gamma: tone curve exponent on [0, 1] intensities.
    light: (x, y) slope of a multiplicative illumination gradient.
    geometry_key: rng key of the subject's own facial geometry
      (`subject_geometry`); distinct per subject.
  """
  name: str
  face: int
  mirror: bool = False
  jaw: float = 0.0
  stretch: float = 1.0
  zoom: float = 1.0
  gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
  gamma: float = 1.0
  light: tuple[float, float] = (0.0, 0.0)
  geometry_key: tuple[int, ...] = ()


# faces.npz order (scripts/make_synthetic_faces.py): 0-3 = Pexels video
# frames 0, 240, 340, 410; 4 = skimage astronaut (Eileen Collins); 5-8 =
# Pexels frames 36, 228, 264, 372; 9 = Grace Hopper (matplotlib sample data);
# 10-13 = Pexels frames 24, 288, 300, 432 (used by `synthetic_macro` only).
# Every subject has its own crop and its own geometry: three real people
# underlie the ten subjects (see README.md).
SUBJECTS = (
    SubjectSpec("sub01", 0, geometry_key=(_IDENTITY_STREAM, 0)),
    SubjectSpec("sub02", 1, mirror=True, jaw=-0.10, stretch=1.05,
                gain=(1.02, 1.0, 1.10), light=(-0.15, 0.05),
                geometry_key=(_IDENTITY_STREAM, 1)),
    SubjectSpec("sub03", 2, geometry_key=(_IDENTITY_STREAM, 2)),
    SubjectSpec("sub04", 3, mirror=True, jaw=0.08, zoom=1.06,
                gain=(1.10, 1.0, 0.90), light=(0.2, 0.0),
                geometry_key=(_IDENTITY_STREAM, 3)),
    SubjectSpec("sub05", 4, geometry_key=(_IDENTITY_STREAM, 4)),
    SubjectSpec("sub06", 5, mirror=True, jaw=0.12, stretch=0.95,
                gain=(0.82, 0.68, 0.58), gamma=1.1, light=(0.15, 0.0),
                geometry_key=(_IDENTITY_STREAM, 5)),
    SubjectSpec("sub07", 6, zoom=0.93, gain=(0.80, 0.70, 0.62), gamma=1.15,
                light=(0.0, -0.12), geometry_key=(_IDENTITY_STREAM, 6)),
    SubjectSpec("sub08", 7, mirror=True, jaw=-0.12, stretch=1.06, zoom=0.96,
                gain=(0.70, 0.60, 0.52), gamma=0.9, light=(-0.1, 0.1),
                geometry_key=(_IDENTITY_STREAM, 7)),
    SubjectSpec("sub09", 8, jaw=0.06, gain=(1.05, 0.95, 0.85),
                light=(0.1, 0.1), geometry_key=(_IDENTITY_STREAM, 8)),
    SubjectSpec("sub10", 9, geometry_key=(_IDENTITY_STREAM, 9)),
)

# Per class: (landmark, (dx, dy), sigma) bumps, displacement in units of the
# clip amplitude before normalisation. dx > 0 means "toward the face midline"
# (it is sign-flipped for landmarks right of the midline); dy > 0 is down.
# Sigmas are px at 112.
_AU_BUMPS = {
    0: (("brow_l_outer", (0.0, -0.8), 7.0), ("brow_l_mid", (0.0, -1.0), 7.0),
        ("brow_l_inner", (0.0, -1.0), 6.0), ("brow_r_inner", (0.0, -1.0), 6.0),
        ("brow_r_mid", (0.0, -1.0), 7.0), ("brow_r_outer", (0.0, -0.8), 7.0)),
    1: (("brow_l_inner", (0.6, 0.8), 6.0), ("brow_r_inner", (0.6, 0.8), 6.0),
        ("brow_l_mid", (0.3, 0.7), 7.0), ("brow_r_mid", (0.3, 0.7), 7.0),
        ("brow_l_outer", (0.0, 0.3), 7.0), ("brow_r_outer", (0.0, 0.3), 7.0)),
    2: (("mouth_l", (-0.6, -0.8), 6.0), ("mouth_r", (-0.6, -0.8), 6.0)),
    3: (("mouth_l", (0.15, 1.0), 6.0), ("mouth_r", (0.15, 1.0), 6.0)),
    4: (("nose_l", (0.2, -1.0), 5.0), ("nose_r", (0.2, -1.0), 5.0),
        ("nose_side_l", (0.1, -0.7), 5.0), ("nose_side_r", (0.1, -0.7), 5.0),
        ("lip_upper", (0.0, -0.5), 6.0)),
}

# Identity geometry features, same bump format as `_AU_BUMPS`. Together they
# span every class' motion (brow height, inner brows, mouth corners, nostrils
# and upper lip), plus eye spacing, mouth width and nose width, so that a
# neutral face can look like any class' apex.
GEOMETRY_BUMPS = {
    "brow_height": tuple((n, (0.0, -1.0), 7.0) for n in (
        "brow_l_outer", "brow_l_mid", "brow_l_inner", "brow_r_inner",
        "brow_r_mid", "brow_r_outer")),
    "brow_inner": (("brow_l_inner", (0.6, 0.8), 6.0),
                   ("brow_r_inner", (0.6, 0.8), 6.0),
                   ("brow_l_mid", (0.3, 0.5), 7.0),
                   ("brow_r_mid", (0.3, 0.5), 7.0)),
    "eye_spacing": (("eye_l", (1.0, 0.0), 7.0), ("eye_r", (1.0, 0.0), 7.0)),
    "mouth_width": (("mouth_l", (-1.0, 0.0), 6.0), ("mouth_r", (-1.0, 0.0), 6.0)),
    "mouth_corners": (("mouth_l", (0.0, -1.0), 6.0),
                      ("mouth_r", (0.0, -1.0), 6.0)),
    "nose": (("nose_l", (0.0, -1.0), 5.0), ("nose_r", (0.0, -1.0), 5.0),
             ("nose_side_l", (0.0, -0.7), 5.0), ("nose_side_r", (0.0, -0.7), 5.0),
             ("lip_upper", (0.0, -0.5), 6.0)),
    "nose_width": (("nose_l", (-1.0, 0.0), 5.0), ("nose_r", (-1.0, 0.0), 5.0)),
}
GEOMETRY_FEATURES = tuple(GEOMETRY_BUMPS)


@dataclasses.dataclass(frozen=True)
class SynthClip:
  """The timing and class of one synthetic clip; cheap to make (no pixels).

  Shared by `synthetic_me` and `synthetic_macro`: `subject_index` indexes the
  corpus' own subject table, `subject` is that subject's name.
  """
  subject_index: int
  clip_index: int
  label: int
  num_frames: int
  onset: int
  apex: int
  offset: int
  subject: str

  @property
  def clip(self) -> str:
    return "clip%02d" % self.clip_index


def plan_clips(key: Sequence[int], subject_index: int, subject: str,
               num_classes: int, clips_per_class: int,
               timing: Callable[[np.random.Generator], tuple[int, int, int]]
               ) -> list[SynthClip]:
  """Plans every clip of one subject: `num_classes * clips_per_class` clips.

  Labels come in a per-subject shuffled order (so the clip index does not
  give the label away) from `rng(key + [subject_index, 2**20])`; clip `c`
  draws from `rng(key + [subject_index, c])`: first `timing(rng)` ->
  `(num_frames, onset, onset -> offset frames)`, then the apex at 35-60 % of
  the way.
  """
  n = num_classes * clips_per_class
  labels = np.random.default_rng(list(key) + [subject_index, _LABEL_STREAM]).permutation(
      np.arange(n) % num_classes)
  plans = []
  for c in range(n):
    rng = np.random.default_rng(list(key) + [subject_index, c])
    t, onset, dur = timing(rng)
    apex = onset + int(np.clip(round(dur * rng.uniform(0.35, 0.6)), 1, dur - 1))
    plans.append(SynthClip(subject_index, c, int(labels[c]), t, onset, apex,
                           onset + dur, subject))
  return plans


def _micro_timing(rng: np.random.Generator) -> tuple[int, int, int]:
  t = int(rng.integers(_T_RANGE[0], _T_RANGE[1] + 1))
  dur = int(rng.integers(_DURATION_RANGE[0], _DURATION_RANGE[1] + 1))
  onset = int(rng.integers(_MIN_NEUTRAL, t - dur - _MIN_NEUTRAL))
  return t, onset, dur


def plan_subject(seed: int, subject_index: int,
                 clips_per_class: int) -> list[SynthClip]:
  """Plans every clip of one subject: `len(CLASS_NAMES) * clips_per_class`."""
  return plan_clips([seed], subject_index, SUBJECTS[subject_index].name,
                    len(CLASS_NAMES), clips_per_class, _micro_timing)


def envelope(plan) -> np.ndarray:
  """The AU intensity time course, `[T]` float32 in [0, 1], 1 at the apex.

  `plan` needs `num_frames`, `onset`, `apex` and `offset`.
  """
  t = np.arange(plan.num_frames, dtype=np.float64)
  rise = np.sin(0.5 * np.pi * (t - plan.onset) / (plan.apex - plan.onset))**2
  fall = np.cos(0.5 * np.pi * (t - plan.apex) / (plan.offset - plan.apex))**2
  env = np.where(t <= plan.apex, rise, fall)
  env[(t < plan.onset) | (t > plan.offset)] = 0.0
  return env.astype(np.float32)


@functools.lru_cache(maxsize=None)
def _faces() -> dict[str, np.ndarray]:
  with np.load(FACES_PATH) as z:
    return {k: z[k] for k in z.files}


def _swap_side(name: str) -> str:
  """'brow_l_inner' -> 'brow_r_inner', 'eye_r' -> 'eye_l' (for mirroring)."""
  swap = {"l": "r", "r": "l"}
  return "_".join(swap.get(tok, tok) for tok in name.split("_"))


def bump_field(bumps, landmarks: dict[str, np.ndarray], size: int = INTERNAL_SIZE,
               width: float = 1.0,
               side_gain: tuple[float, float] = (1.0, 1.0),
               points: np.ndarray | None = None) -> np.ndarray:
  """A sum of Gaussian displacement bumps, `[size, size, 2]` float32 (dx, dy).

  `bumps` is a sequence of `(landmark, (dx, dy), sigma)`; dx > 0 points toward
  the face midline (the eye centres' mean), so one entry describes both sides.
  Not normalised. With `points` `[P, 2]` (x, y), the field at those points
  only, `[P, 2]`.
  """
  mid_x = (landmarks["eye_l"][0] + landmarks["eye_r"][0]) / 2
  if points is None:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  else:
    xs, ys = points[:, 0], points[:, 1]
  field = np.zeros(xs.shape + (2,), np.float32)
  for name, (dx, dy), sigma in bumps:
    cx, cy = landmarks[name]
    right = cx > mid_x
    vx = -dx if right else dx  # dx is "toward the midline"
    s = sigma * width
    bump = np.exp(-((xs - cx)**2 + (ys - cy)**2) / (2 * s * s)) * side_gain[int(right)]
    field[..., 0] += vx * bump
    field[..., 1] += dy * bump
  return field


def _normalised(field: np.ndarray) -> np.ndarray:
  return field / np.linalg.norm(field, axis=-1).max()


def geometry_field(coefficients: np.ndarray, landmarks: dict[str, np.ndarray],
                   size: int = INTERNAL_SIZE,
                   side_gains: np.ndarray | None = None) -> np.ndarray:
  """Identity geometry: `sum_k coefficients[k] * unit field of feature k`.

  Each feature's field (`GEOMETRY_BUMPS`) is normalised to a mean of 1 px at
  its own landmarks, so `coefficients[k]` is how far feature k moves them,
  in px (times the per-side gain). Returns `[size, size, 2]` float32.
  """
  field = np.zeros((size, size, 2), np.float32)
  for k, name in enumerate(GEOMETRY_FEATURES):
    gain = (1.0, 1.0) if side_gains is None else tuple(side_gains[k])
    f = bump_field(GEOMETRY_BUMPS[name], landmarks, size, side_gain=gain)
    # Normalised so the mean displacement at the feature's own landmarks is
    # 1 px (before side gains): `coefficients[k]` is how far they move.
    at = [np.linalg.norm(bump_field(GEOMETRY_BUMPS[name], landmarks,
                                    points=landmarks[n][None])[0])
          for n, _, _ in GEOMETRY_BUMPS[name]]
    field += coefficients[k] * f / max(float(np.mean(at)), 1e-6)
  return field


def draw_geometry(rng: np.random.Generator, sigma: float,
                  limit: float) -> tuple[np.ndarray, np.ndarray]:
  """Random geometry: coefficients `[F]` ~ N(0, sigma) clipped to +-limit,
  and per-side gains `[F, 2]` in [0.75, 1.25] (faces are not symmetric)."""
  f = len(GEOMETRY_FEATURES)
  coef = np.clip(rng.normal(0.0, sigma, f), -limit, limit)
  return coef, rng.uniform(0.75, 1.25, (f, 2))


def warp_landmarks(field: np.ndarray,
                   landmarks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Where landmarks move under a forward displacement field (nearest cell)."""
  n = field.shape[0]
  out = {}
  for k, p in landmarks.items():
    x, y = np.clip(np.rint(p).astype(int), 0, n - 1)
    out[k] = p + field[y, x]
  return out


def subject_geometry(spec: SubjectSpec) -> tuple[np.ndarray, np.ndarray]:
  """The subject's own geometry: coefficients `[F]` px and side gains `[F, 2]`."""
  return draw_geometry(np.random.default_rng(list(spec.geometry_key)),
                       SUBJECT_GEOMETRY_SIGMA, SUBJECT_GEOMETRY_MAX)


def _remap(img: np.ndarray, forward: np.ndarray) -> np.ndarray:
  """Moves content by a smooth forward field (backward map p - d(p))."""
  n = img.shape[0]
  ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
  return cv2.remap(img, xs - forward[..., 0], ys - forward[..., 1],
                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@functools.lru_cache(maxsize=None)
def identity_face(spec: SubjectSpec) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """A subject's neutral face: image `[112, 112, 3]` float32 in [0, 255], and
  named landmarks (x, y) in its pixel coordinates."""
  faces = _faces()
  img = faces["images"][spec.face].astype(np.float32)
  size = img.shape[0]
  lm = {str(n): p.astype(np.float64)
        for n, p in zip(faces["landmark_names"], faces["landmarks"][spec.face])}
  if spec.mirror:
    img = img[:, ::-1]
    lm = {_swap_side(n): np.array([size - 1 - p[0], p[1]]) for n, p in lm.items()}

  # Face-shape warp about the eye line: y' = cy + (y - cy) * sy and
  # x' = cx + (x - cx) * sx(y'); the remap needs its inverse.
  cx = (lm["eye_l"][0] + lm["eye_r"][0]) / 2
  cy = (lm["eye_l"][1] + lm["eye_r"][1]) / 2
  sy = spec.zoom * spec.stretch
  sx = lambda y: spec.zoom * (1.0 + spec.jaw * (y - cy) / size)
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
  map_x = (cx + (xs - cx) / sx(ys)).astype(np.float32)
  map_y = (cy + (ys - cy) / sy).astype(np.float32)
  img = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REFLECT_101)
  for n, (x, y) in list(lm.items()):
    y2 = cy + (y - cy) * sy
    lm[n] = np.array([cx + (x - cx) * sx(y2), y2])

  # Tone: gamma, white balance / skin tone, illumination gradient.
  g = np.linspace(-0.5, 0.5, size)
  light = 1.0 + spec.light[0] * g[None, :] + spec.light[1] * g[:, None]
  img = 255.0 * (img / 255.0)**spec.gamma
  img = img * np.asarray(spec.gain)[None, None, :] * light[:, :, None]

  scale = INTERNAL_SIZE / size
  img = cv2.resize(np.clip(img, 0, 255).astype(np.float32),
                   (INTERNAL_SIZE, INTERNAL_SIZE), interpolation=cv2.INTER_AREA)
  # cv2.resize maps pixel centres: x' = (x + 0.5) * scale - 0.5.
  lm = {n: (p + 0.5) * scale - 0.5 for n, p in lm.items()}
  _derived_landmarks(lm)

  # The subject's own facial geometry.
  if spec.geometry_key:
    coef, gains = subject_geometry(spec)
    field = geometry_field(coef, lm, INTERNAL_SIZE, gains)
    img = _remap(img, field)
    lm = warp_landmarks(field, lm)
  return img, lm


def _derived_landmarks(lm: dict[str, np.ndarray]) -> None:
  """Adds points the crops do not store (in place)."""
  for side in ("l", "r"):
    # AU9: skin at the side of the nose, between the eye's inner half and
    # the nostril.
    lm["nose_side_" + side] = 0.4 * lm["eye_" + side] + 0.6 * lm["nose_" + side]


def subject_face(subject_index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """`identity_face` of `SUBJECTS[subject_index]`."""
  return identity_face(SUBJECTS[subject_index])


def au_field(label: int, landmarks: dict[str, np.ndarray],
             rng: np.random.Generator | None = None,
             size: int = INTERNAL_SIZE) -> np.ndarray:
  """The apex displacement field of a class, `[size, size, 2]` float32 (dx, dy).

  Normalised to a maximum displacement of 1 px; with `rng`, bump widths and
  left/right strengths vary randomly (a per-clip draw).
  """
  width = 1.0 if rng is None else rng.uniform(0.85, 1.15)
  side_gain = (1.0, 1.0) if rng is None else tuple(1.0 + rng.uniform(-0.25, 0.25, 2))
  return _normalised(bump_field(_AU_BUMPS[label], landmarks, size, width, side_gain))


def au_region(label: int, landmarks: dict[str, np.ndarray],
              size: int = INTERNAL_SIZE, radius: float = 2.0) -> np.ndarray:
  """Boolean `[size, size]` mask within `radius` sigmas of the class' bumps."""
  return bump_region(_AU_BUMPS[label], landmarks, size, radius)


def bump_region(bumps, landmarks: dict[str, np.ndarray], size: int,
                radius: float = 2.0) -> np.ndarray:
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  mask = np.zeros((size, size), bool)
  for name, _, sigma in bumps:
    cx, cy = landmarks[name]
    mask |= (xs - cx)**2 + (ys - cy)**2 <= (radius * sigma)**2
  return mask


def random_pose(rng: np.random.Generator, face: np.ndarray,
                landmarks: dict[str, np.ndarray], max_angle: float,
                max_scale: float, max_shift: float):
  """A random similarity transform of the whole face: (image, landmarks)."""
  n = face.shape[0]
  angle = rng.uniform(-max_angle, max_angle)
  scale = rng.uniform(1.0 - max_scale, 1.0 + max_scale)
  shift = rng.uniform(-max_shift, max_shift, 2)
  m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle, scale)
  m[:, 2] += shift
  base = cv2.warpAffine(face, m, (n, n), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT_101)
  return base, {k: m[:, :2] @ p + m[:, 2] for k, p in landmarks.items()}


def render_frames(base: np.ndarray, static: np.ndarray | None,
                  motion: np.ndarray, env: np.ndarray,
                  rng: np.random.Generator, size: int, max_drift: float = 1.0,
                  tremor: float = 0.1, flicker: float = 0.005,
                  noise: tuple[float, float] = (1.0, 2.5)) -> np.ndarray:
  """Frames `[T, size, size, 3]` uint8 of `base` warped by `static + env[t] * motion`.

  Adds a linear head drift of up to `max_drift` px, `tremor` px per-frame
  jitter, a per-frame gain `flicker` and Gaussian sensor noise with sigma ~
  U(*noise) grey levels; renders at `base`'s size and area-resizes to `size`.
  """
  n = base.shape[0]
  t_len = len(env)
  t_frac = np.linspace(0.0, 1.0, t_len)[:, None]
  drift_dir = rng.uniform(0, 2 * np.pi)
  drift = rng.uniform(0.0, max_drift) * np.array([np.cos(drift_dir),
                                                  np.sin(drift_dir)])
  jitter = (t_frac * drift + rng.normal(0.0, tremor, (t_len, 2))).astype(np.float32)
  gain = 1.0 + rng.normal(0.0, flicker, t_len)
  noise_sigma = rng.uniform(*noise)
  ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
  if static is not None:
    xs, ys = xs - static[..., 0], ys - static[..., 1]
  frames = np.empty((t_len, size, size, 3), np.uint8)
  white = rng.standard_normal((t_len, n, n, 3), dtype=np.float32)
  for t in range(t_len):
    # Backward map: content displaced by d is sampled from p - d.
    map_x = xs - env[t] * motion[..., 0] - jitter[t, 0]
    map_y = ys - env[t] * motion[..., 1] - jitter[t, 1]
    f = cv2.remap(base, map_x, map_y, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REFLECT_101)
    f = f * gain[t] + noise_sigma * white[t]
    f = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if size != n:
      f = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
    frames[t] = f
  return frames


def clip_geometry(seed: int, plan: SynthClip) -> tuple[np.ndarray, np.ndarray]:
  """The clip's own geometry: coefficients `[F]` px and side gains `[F, 2]`."""
  rng = np.random.default_rng([seed, plan.subject_index, plan.clip_index, 2])
  return draw_geometry(rng, CLIP_GEOMETRY_SIGMA, CLIP_GEOMETRY_MAX)


def _clip_neutral(seed: int, plan: SynthClip):
  """The clip's rng (after the pose draws), posed face, geometry field,
  neutral landmarks and geometry coefficients."""
  face, lm0 = subject_face(plan.subject_index)
  # A distinct stream from the planner's, same (seed, subject, clip) key.
  rng = np.random.default_rng([seed, plan.subject_index, plan.clip_index, 1])
  base, lm = random_pose(rng, face, lm0, 4.0, 0.05, 3.0)
  coef, gains = clip_geometry(seed, plan)
  static = geometry_field(coef, lm, INTERNAL_SIZE, gains)
  return rng, base, static, warp_landmarks(static, lm), coef


def clip_landmarks(seed: int, plan: SynthClip):
  """The clip's landmarks `(neutral, apex)`, without rendering pixels.

  `neutral` has the clip's pose and geometry; `apex` adds the full AU field.
  """
  rng, _, _, lm, _ = _clip_neutral(seed, plan)
  amplitude = rng.uniform(*AMPLITUDE_RANGE)
  motion = au_field(plan.label, lm, rng) * amplitude
  return lm, warp_landmarks(motion, lm)


def render_clip(seed: int, plan: SynthClip, size: int = INTERNAL_SIZE,
                return_aux: bool = False):
  """Renders one clip: uint8 RGB frames `[T, size, size, 3]`.

  With `return_aux`, also returns a dict with the clip's landmarks (after its
  geometry and pose, at 112 px), `region` (the `[112, 112]` AU mask),
  `amplitude` (px at apex) and `geometry` (the clip's coefficients `[F]`).
  """
  rng, base, static, lm, coef = _clip_neutral(seed, plan)
  amplitude = rng.uniform(*AMPLITUDE_RANGE)
  motion = au_field(plan.label, lm, rng) * amplitude
  frames = render_frames(base, static, motion, envelope(plan), rng, size)
  if return_aux:
    return frames, {"landmarks": lm, "region": au_region(plan.label, lm),
                    "amplitude": amplitude, "geometry": coef}
  return frames
