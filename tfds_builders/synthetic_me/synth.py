"""Synthesis of micro-expression clips from committed face crops (numpy + cv2).

This module holds everything behind the `synthetic_me` builder but nothing
TFDS-specific, so the check script and tests can render clips cheaply.

How a clip is made (all sizes in pixels of the 112 px internal resolution):

1. Subject face: one of the 5 aligned 128 px crops in `faces.npz` (4 frames
   of one woman in a Pexels video, 1 NASA portrait), passed through that
   subject's fixed identity transform (`SubjectSpec`: mirror, face-shape warp,
   zoom, skin tone, gamma, illumination gradient), resized to 112 px.
2. Clip pose: a random small similarity transform (+-4 deg, +-5 %, +-3 px),
   so absolute feature positions carry no class information.
3. AU motion: a smooth displacement field, a sum of Gaussian bumps at the
   class' landmarks (`_AU_BUMPS`), scaled so the largest displacement is the
   clip's amplitude A ~ U(1.5, 3.0) px at apex, with random left/right
   asymmetry and bump width. Its time course is a sin^2 rise from `onset` to
   `apex` and a cos^2 fall to `offset` (0 at onset/offset, 1 at apex).
4. Head jitter: a linear drift of up to 1 px over the clip plus 0.1 px
   per-frame tremor, applied with the AU field in one `cv2.remap` per frame.
5. Sensor: a per-frame gain flicker (0.5 %) and Gaussian noise (sigma
   U(1, 2.5) grey levels), then quantisation to uint8; for sizes other than
   112 the frames are area-resized afterwards, so every config holds the same
   clips.

Clip timing (at `FPS` = 30): `T` ~ U{24..40} frames, `offset - onset` ~
U{9..15} frames (0.30-0.50 s, a micro-expression), at least 4 neutral frames
before the onset and after the offset, apex at 35-60 % of the way.

Determinism: every random draw of clip `c` of subject `s` comes from
`np.random.default_rng([seed, s, c])` (labels per subject from
`[seed, s, 2**20]`), so any split can be rendered alone and the same seed gives
identical frames.
"""

from __future__ import annotations

import dataclasses
import functools
import os

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
_AMPLITUDE_RANGE = (1.5, 3.0)  # px at apex, 112 px frames
_LABEL_STREAM = 2**20        # rng stream id for the per-subject label order


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


# faces.npz order: 0 = Pexels f000 (neutral, eyes closed, head lowered),
# 1 = f240 (eyes open, lips parted), 2 = f340 (broad smile), 3 = f410 (smile,
# tilt), 4 = skimage astronaut (Eileen Collins, smiling). Subjects 01-05 are
# the crops as they are; 06-10 reuse them with a different identity transform
# (two real people underlie all ten: see README.md).
SUBJECTS = (
    SubjectSpec("sub01", 0),
    SubjectSpec("sub02", 1),
    SubjectSpec("sub03", 2),
    SubjectSpec("sub04", 3),
    SubjectSpec("sub05", 4),
    SubjectSpec("sub06", 4, mirror=True, jaw=0.12, stretch=0.95,
                gain=(0.82, 0.68, 0.58), gamma=1.1, light=(0.15, 0.0)),
    SubjectSpec("sub07", 1, mirror=True, jaw=-0.10, stretch=1.05,
                gain=(1.02, 1.0, 1.10), light=(-0.15, 0.05)),
    SubjectSpec("sub08", 0, mirror=True, zoom=0.93,
                gain=(0.80, 0.70, 0.62), gamma=1.15, light=(0.0, -0.12)),
    SubjectSpec("sub09", 2, mirror=True, jaw=0.08, zoom=1.06,
                gain=(1.10, 1.0, 0.90), light=(0.2, 0.0)),
    SubjectSpec("sub10", 4, jaw=-0.12, stretch=1.06, zoom=0.96,
                gain=(0.70, 0.60, 0.52), gamma=0.9, light=(-0.1, 0.1)),
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


@dataclasses.dataclass(frozen=True)
class ClipPlan:
  """The timing and identity of one clip; cheap to make (no pixels)."""
  subject_index: int
  clip_index: int
  label: int
  num_frames: int
  onset: int
  apex: int
  offset: int

  @property
  def subject(self) -> str:
    return SUBJECTS[self.subject_index].name

  @property
  def clip(self) -> str:
    return "clip%02d" % self.clip_index


def plan_subject(seed: int, subject_index: int,
                 clips_per_class: int) -> list[ClipPlan]:
  """Plans every clip of one subject: `len(CLASS_NAMES) * clips_per_class`."""
  n = len(CLASS_NAMES) * clips_per_class
  # Shuffled so the clip index does not give the label away.
  labels = np.random.default_rng([seed, subject_index, _LABEL_STREAM]).permutation(
      np.arange(n) % len(CLASS_NAMES))
  plans = []
  for c in range(n):
    rng = np.random.default_rng([seed, subject_index, c])
    t = int(rng.integers(_T_RANGE[0], _T_RANGE[1] + 1))
    dur = int(rng.integers(_DURATION_RANGE[0], _DURATION_RANGE[1] + 1))
    onset = int(rng.integers(_MIN_NEUTRAL, t - dur - _MIN_NEUTRAL))
    apex = onset + int(np.clip(round(dur * rng.uniform(0.35, 0.6)), 1, dur - 1))
    plans.append(ClipPlan(subject_index, c, int(labels[c]), t, onset, apex,
                          onset + dur))
  return plans


def envelope(plan: ClipPlan) -> np.ndarray:
  """The AU intensity time course, `[T]` float32 in [0, 1], 1 at the apex."""
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


@functools.lru_cache(maxsize=None)
def subject_face(subject_index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """One subject's neutral face: image `[112, 112, 3]` float32 in [0, 255],
  and named landmarks (x, y) in its pixel coordinates."""
  spec = SUBJECTS[subject_index]
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
  # Derived points for AU9: skin at the side of the nose, between the eye's
  # inner half and the nostril.
  for side in ("l", "r"):
    lm["nose_side_" + side] = 0.4 * lm["eye_" + side] + 0.6 * lm["nose_" + side]
  return img, lm


def au_field(label: int, landmarks: dict[str, np.ndarray],
             rng: np.random.Generator | None = None,
             size: int = INTERNAL_SIZE) -> np.ndarray:
  """The apex displacement field of a class, `[size, size, 2]` float32 (dx, dy).

  Normalised to a maximum displacement of 1 px; with `rng`, bump widths and
  left/right strengths vary randomly (a per-clip draw).
  """
  mid_x = (landmarks["eye_l"][0] + landmarks["eye_r"][0]) / 2
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  field = np.zeros((size, size, 2), np.float32)
  width = 1.0 if rng is None else rng.uniform(0.85, 1.15)
  side_gain = (1.0, 1.0) if rng is None else 1.0 + rng.uniform(-0.25, 0.25, 2)
  for name, (dx, dy), sigma in _AU_BUMPS[label]:
    cx, cy = landmarks[name]
    right = cx > mid_x
    vx = -dx if right else dx  # dx is "toward the midline"
    gain = side_gain[int(right)]
    s = sigma * width
    bump = np.exp(-((xs - cx)**2 + (ys - cy)**2) / (2 * s * s)) * gain
    field[..., 0] += vx * bump
    field[..., 1] += dy * bump
  return field / np.linalg.norm(field, axis=-1).max()


def au_region(label: int, landmarks: dict[str, np.ndarray],
              size: int = INTERNAL_SIZE, radius: float = 2.0) -> np.ndarray:
  """Boolean `[size, size]` mask within `radius` sigmas of the class' bumps."""
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  mask = np.zeros((size, size), bool)
  for name, _, sigma in _AU_BUMPS[label]:
    cx, cy = landmarks[name]
    mask |= (xs - cx)**2 + (ys - cy)**2 <= (radius * sigma)**2
  return mask


def render_clip(seed: int, plan: ClipPlan, size: int = INTERNAL_SIZE,
                return_aux: bool = False):
  """Renders one clip: uint8 RGB frames `[T, size, size, 3]`.

  With `return_aux`, also returns a dict with the clip's landmarks (after its
  pose, at 112 px) and `region`, the `[112, 112]` AU mask.
  """
  face, lm0 = subject_face(plan.subject_index)
  # A distinct stream from the planner's, same (seed, subject, clip) key.
  rng = np.random.default_rng([seed, plan.subject_index, plan.clip_index, 1])
  n = INTERNAL_SIZE

  # Clip pose: a small similarity transform of the whole face.
  angle = rng.uniform(-4.0, 4.0)
  scale = rng.uniform(0.95, 1.05)
  shift = rng.uniform(-3.0, 3.0, 2)
  m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle, scale)
  m[:, 2] += shift
  base = cv2.warpAffine(face, m, (n, n), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT_101)
  lm = {k: m[:, :2] @ p + m[:, 2] for k, p in lm0.items()}

  amplitude = rng.uniform(*_AMPLITUDE_RANGE)
  field = au_field(plan.label, lm, rng) * amplitude
  env = envelope(plan)
  t_frac = np.linspace(0.0, 1.0, plan.num_frames)[:, None]
  drift_dir = rng.uniform(0, 2 * np.pi)
  drift = rng.uniform(0.0, 1.0) * np.array([np.cos(drift_dir), np.sin(drift_dir)])
  jitter = (t_frac * drift
            + rng.normal(0.0, 0.1, (plan.num_frames, 2))).astype(np.float32)
  flicker = 1.0 + rng.normal(0.0, 0.005, plan.num_frames)
  noise_sigma = rng.uniform(1.0, 2.5)

  ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
  frames = np.empty((plan.num_frames, size, size, 3), np.uint8)
  noise = rng.standard_normal((plan.num_frames, n, n, 3), dtype=np.float32)
  for t in range(plan.num_frames):
    # Backward map: content displaced by d is sampled from p - d.
    map_x = xs - env[t] * field[..., 0] - jitter[t, 0]
    map_y = ys - env[t] * field[..., 1] - jitter[t, 1]
    f = cv2.remap(base, map_x, map_y, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REFLECT_101)
    f = f * flicker[t] + noise_sigma * noise[t]
    f = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if size != n:
      f = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
    frames[t] = f
  if return_aux:
    return frames, {"landmarks": lm, "region": au_region(plan.label, lm)}
  return frames
