"""`synthetic_macro`: macro-expressions on held-out synthetic identities (no licence needed).

The macro counterpart of `synthetic_me`, for MA2MI pretraining
(`configs/ma2mi_synthetic.py`). It shares `synthetic_me`'s renderer
(`tfds_builders/synthetic_me/synth.py`: face crops, identity transforms,
geometry, pose, warp, noise) but neither its identities nor its motions:

* **Identities.** Six subjects `mac01`..`mac06` from four frames of the
  Pexels video (24, 288, 300, 432) that no `synthetic_me` subject uses, each
  with its own identity transform and its own facial geometry (rng stream
  2**22; `synthetic_me` uses 2**21). The woman in the video is also the
  person behind eight of `synthetic_me`'s ten subjects (other frames, other
  geometry); the astronaut and Grace Hopper faces (`synthetic_me` sub05,
  sub10) are not used here.
* **Motions.** Six action units that no `synthetic_me` class moves:

  | label | emotion          | action_units | motion at apex                     |
  |-------|------------------|--------------|------------------------------------|
  | 0     | upper_lid_raise  | AU5          | upper eyelids and the skin above up |
  | 1     | cheek_raise      | AU6          | cheeks up and out                  |
  | 2     | lip_stretch      | AU20         | mouth corners straight out         |
  | 3     | jaw_drop         | AU26         | lower lip and chin down            |
  | 4     | chin_raise       | AU17         | chin and lower lip up              |
  | 5     | lip_pucker       | AU18         | mouth corners toward the midline   |

* **Macro scale.** Amplitude 5-10 px at 112 px (`synthetic_me`: 1.5-3),
  onset -> offset 15-30 frames at 30 fps (0.5-1.0 s; `synthetic_me`: 0.3-0.5
  s), 4-10 neutral frames on each side; per-clip pose, geometry (N(0, 3 px)
  per feature), drift, flicker and noise as in `synthetic_me`.

Each subject has 36 clips, 6 per class (216 in all). Configs: `s64`
(default), `s112` (the same clips), `tiny` (2 subjects x 6 clips, 32 px,
for tests). Clip `c` of subject `s` draws everything from
`np.random.default_rng([seed, 2**22, s, c, stream])`.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import synthetic
from tfds_builders.synthetic_me import synth

DATASET = "synthetic_macro"
CLASS_NAMES = ("upper_lid_raise", "cheek_raise", "lip_stretch", "jaw_drop",
               "chin_raise", "lip_pucker")
ACTION_UNITS = ("AU5", "AU6", "AU20", "AU26", "AU17", "AU18")
FPS = synth.FPS
AMPLITUDE_RANGE = (5.0, 10.0)  # px at apex, 112 px frames
_DURATION_RANGE = (15, 30)     # onset -> offset frames, inclusive
_NEUTRAL_RANGE = (4, 10)       # neutral frames before onset / after offset
_STREAM = 2**22                # every draw of this corpus; synthetic_me never uses it

# Faces 10-13 of faces.npz are Pexels frames 24, 288, 300, 432 (see
# scripts/make_synthetic_faces.py); synthetic_me uses faces 0-9.
SUBJECTS = (
    synth.SubjectSpec("mac01", 10, geometry_key=(_STREAM, 0)),
    synth.SubjectSpec("mac02", 11, mirror=True, jaw=0.10, stretch=0.96,
                      gain=(0.85, 0.75, 0.65), gamma=1.1, light=(0.1, 0.0),
                      geometry_key=(_STREAM, 1)),
    synth.SubjectSpec("mac03", 12, jaw=-0.08, stretch=1.04,
                      gain=(1.05, 1.0, 1.08), light=(-0.12, 0.0),
                      geometry_key=(_STREAM, 2)),
    synth.SubjectSpec("mac04", 13, mirror=True, zoom=0.95,
                      gain=(0.75, 0.65, 0.55), gamma=0.95, light=(0.0, 0.1),
                      geometry_key=(_STREAM, 3)),
    synth.SubjectSpec("mac05", 10, mirror=True, jaw=0.12, zoom=1.05,
                      gain=(1.08, 0.98, 0.88), light=(0.15, -0.05),
                      geometry_key=(_STREAM, 4)),
    synth.SubjectSpec("mac06", 12, mirror=True, jaw=-0.12, stretch=1.06,
                      gain=(0.72, 0.62, 0.55), gamma=1.15, light=(-0.1, 0.1),
                      geometry_key=(_STREAM, 5)),
)

# (landmark, (dx toward midline, dy down), sigma px at 112), as synth._AU_BUMPS.
_AU_BUMPS = {
    0: (("lid_l", (0.0, -1.0), 5.0), ("lid_r", (0.0, -1.0), 5.0)),
    1: (("cheek_l", (-0.4, -1.0), 8.0), ("cheek_r", (-0.4, -1.0), 8.0)),
    2: (("mouth_l", (-1.0, 0.0), 6.0), ("mouth_r", (-1.0, 0.0), 6.0)),
    3: (("lip_lower", (0.0, 1.0), 7.0), ("chin", (0.0, 1.0), 9.0)),
    4: (("chin", (0.0, -1.0), 8.0), ("lip_lower", (0.0, -0.6), 6.0)),
    5: (("mouth_l", (1.0, 0.0), 6.0), ("mouth_r", (1.0, 0.0), 6.0)),
}


def _macro_landmarks(lm: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Adds the points macro AUs need: upper lids, cheeks, lower lip, chin."""
  lm = dict(lm)
  mouth_w = np.linalg.norm(lm["mouth_r"] - lm["mouth_l"])
  mid_mouth = (lm["mouth_l"] + lm["mouth_r"]) / 2
  for side in ("l", "r"):
    lm["lid_" + side] = lm["eye_" + side] + np.array([0.0, -0.06 * mouth_w])
    lm["cheek_" + side] = 0.45 * lm["eye_" + side] + 0.55 * lm["mouth_" + side]
  lm["lip_lower"] = mid_mouth + np.array([0.0, 0.15 * mouth_w])
  lm["chin"] = mid_mouth + np.array([0.0, 0.45 * mouth_w])
  return lm


def _macro_timing(rng: np.random.Generator) -> tuple[int, int, int]:
  dur = int(rng.integers(_DURATION_RANGE[0], _DURATION_RANGE[1] + 1))
  before, after = rng.integers(_NEUTRAL_RANGE[0], _NEUTRAL_RANGE[1] + 1, 2)
  return int(before + dur + after + 1), int(before), dur


def plan_subject(seed: int, subject_index: int,
                 clips_per_class: int) -> list[synth.SynthClip]:
  """Every clip of one subject, classes in a shuffled order."""
  return synth.plan_clips([seed, _STREAM], subject_index,
                          SUBJECTS[subject_index].name, len(CLASS_NAMES),
                          clips_per_class, _macro_timing)


def render_clip(seed: int, plan: synth.SynthClip, size: int = synth.INTERNAL_SIZE,
                return_aux: bool = False):
  """Renders one macro clip: uint8 RGB frames `[T, size, size, 3]`.

  With `return_aux`, also returns `landmarks` (after pose and geometry, at
  112 px), `region` (the AU mask) and `amplitude` (px at apex).
  """
  face, lm0 = synth.identity_face(SUBJECTS[plan.subject_index])
  key = [seed, _STREAM, plan.subject_index, plan.clip_index]
  rng = np.random.default_rng(key + [1])
  base, lm = synth.random_pose(rng, face, lm0, 5.0, 0.07, 4.0)
  coef, gains = synth.draw_geometry(np.random.default_rng(key + [2]),
                                    synth.CLIP_GEOMETRY_SIGMA,
                                    synth.CLIP_GEOMETRY_MAX)
  static = synth.geometry_field(coef, lm, synth.INTERNAL_SIZE, gains)
  lm = _macro_landmarks(synth.warp_landmarks(static, lm))
  width = rng.uniform(0.85, 1.15)
  side_gain = tuple(1.0 + rng.uniform(-0.25, 0.25, 2))
  field = synth.bump_field(_AU_BUMPS[plan.label], lm, synth.INTERNAL_SIZE,
                           width, side_gain)
  amplitude = rng.uniform(*AMPLITUDE_RANGE)
  motion = field / np.linalg.norm(field, axis=-1).max() * amplitude
  frames = synth.render_frames(base, static, motion, synth.envelope(plan), rng,
                               size, max_drift=1.5)
  if return_aux:
    return frames, {"landmarks": lm, "amplitude": amplitude,
                    "region": synth.bump_region(_AU_BUMPS[plan.label], lm,
                                                synth.INTERNAL_SIZE)}
  return frames


CORPUS = synthetic.SyntheticCorpus(DATASET, CLASS_NAMES, ACTION_UNITS, SUBJECTS,
                                   plan_subject, render_clip, FPS)
plan = CORPUS.plan                  # config -> {split: [synth.SynthClip]}
make_example = CORPUS.make_example  # (config, clip) -> (key, record)


class Builder(synthetic.SyntheticBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Synthetic macro-expressions on held-out identities; one split per subject."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: 6 held-out identities x 36 clips, 6 macro "
               "AU classes (AU5, AU6, AU20, AU26, AU17, AU18), 5-10 px, "
               "0.5-1.0 s. Replaces the renderer inside "
               "mer_jax/tasks/ma2mi_pretrain.py.",
  }
  BUILDER_CONFIGS = CORPUS.configs(tiny_subjects=2)
  SYNTHETIC = CORPUS
  EXTRA_METADATA = {"macro": True}
