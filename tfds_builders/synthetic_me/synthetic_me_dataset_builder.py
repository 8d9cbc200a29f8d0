"""`synthetic_me`: the embedded default micro-expression corpus (no licence needed).

Clips are synthesised from real face crops committed in this package
(`faces.npz`, made by `scripts/make_synthetic_faces.py`): eight frames of one
woman from a Pexels video (credit Wolfgang Langer, Pexels licence), the
public-domain NASA portrait in `skimage.data.astronaut()` (Eileen Collins)
and the public-domain U.S. Navy portrait of Grace Hopper that matplotlib
ships. Ten subjects `sub01`..`sub10`, each from its own crop with its own
identity transform and its own facial geometry (brow height, inner brows,
eye spacing, mouth width and corners, nose; `synth.SUBJECTS`), so no test
subject's neutral geometry appears in training. Three real people underlie
them (eight subjects are the same woman): LOSO here tests whether a model
reads motion, not generalisation across people.

Since 2.0.0 every clip also draws its own geometry, by at least as much as
an expression moves a feature (N(0, 3 px) per feature against a 1.5-3 px
apex amplitude), so a single frame does not reveal the class: the apex-frame
controls of `scripts/check_synthetic.py` stay near chance, motion does not.

Each subject has 30 clips, 6 per class, in a per-subject shuffled order:

| label | emotion            | action_units | motion at apex (112 px)            |
|-------|--------------------|--------------|------------------------------------|
| 0     | brow_raise         | AU1+AU2      | brows up                           |
| 1     | brow_lower         | AU4          | brows down, inner ends together    |
| 2     | lip_corner_pull    | AU12         | mouth corners up and out           |
| 3     | lip_corner_depress | AU15         | mouth corners down                 |
| 4     | nose_wrinkle       | AU9          | nostrils, nose sides, upper lip up |

The motion is a smooth Gaussian-bump displacement field of 1.5-3 px peak at
apex (at 112 px; micro-expression scale), with a sin^2 onset -> apex -> offset
time course over 9-15 frames at 30 fps, inside a 24-40 frame clip with >= 4
neutral frames on each side; plus random pose per clip, sub-pixel to 1 px head
drift, illumination flicker and sensor noise (`synth` has the details).
Everything is drawn from `np.random.default_rng([seed, subject, clip])`, so the
same seed gives byte-identical frames.

Configs: `s64` (default) and `s112` hold the same clips (rendered at 112 px,
area-resized for 64); `tiny` (3 subjects x 5 clips, 32 px) is for tests.
Build (array_record is required without TensorFlow):

  import tfds_builders.synthetic_me  # registers the builder
  b = tfds.builder("synthetic_me/s64", data_dir=D, file_format="array_record")
  b.download_and_prepare(file_format="array_record")
  ds = b.as_data_source(split="sub01")
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from tfds_builders import synthetic
from tfds_builders.synthetic_me import synth

CLASS_NAMES = synth.CLASS_NAMES
ACTION_UNITS = synth.ACTION_UNITS
FPS = synth.FPS
DATASET = "synthetic_me"
CORPUS = synthetic.SyntheticCorpus(
    DATASET, CLASS_NAMES, ACTION_UNITS, synth.SUBJECTS, synth.plan_subject,
    synth.render_clip, FPS)
plan = CORPUS.plan                  # config -> {split: [synth.SynthClip]}
make_example = CORPUS.make_example  # (config, clip) -> (key, record)


class Builder(synthetic.SyntheticBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Synthetic micro-expressions warped into real faces; one split per subject."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: 10 subjects x 30 clips, 5 AU classes.",
      "1.1.0": "Records carry `apex_annotated` (always True: the apex is the "
               "generated peak). Same clips and frames as 1.0.0.",
      "2.0.0": "Solvable only from motion: every clip draws its own facial "
               "geometry (brow height, inner brows, eye spacing, mouth width "
               "and corners, nostrils, nose width; N(0, 3 px) per feature, at "
               "least the 1.5-3 px expression amplitude); ten subjects from "
               "ten distinct crops of three real people (new: four more "
               "Pexels frames and Grace Hopper), each with its own geometry. "
               "All frames differ from 1.x.",
  }
  BUILDER_CONFIGS = CORPUS.configs(tiny_subjects=3)
  SYNTHETIC = CORPUS
