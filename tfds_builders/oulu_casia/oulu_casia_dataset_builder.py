"""Oulu-CASIA NIR&VIS (Zhao et al., IVC 2011): posed MACRO-expressions, 80 subjects, 6 emotions, 25 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

`OriginalImg/<camera>/<lighting>/<subject>/<Emotion>/000.jpeg ...`:
camera VL (visible light) or NI (near infrared), lighting Strong, Weak or
Dark, subjects P001..P080, emotion folders Anger, Disgust, Fear, Happiness,
Sadness, Surprise (the label; there is no annotation file). Every sequence
runs from neutral to the peak (as in CK+), so `frames` is the whole
sequence, onset = 0, apex = offset = T-1, `apex_annotated` True (the
recording ends at the peak by design). One config per camera x lighting:
the plain names (`6class_112`) read VL/Strong, the others carry the variant
(`6class_112_ni_dark`).

Quirks handled: Windows `Thumbs.db` files inside the frame folders (not
frames, ignored like any non-image), an extra folder level from unpacking
(`Oulu_CASIA_NIR_VIS/OriginalImg`, `OriginalImg/OriginalImg`), subjects that
lack some emotion folders (fewer sequences, nothing to skip). Defects
(counted skips, or errors under --strict): an unknown emotion folder, an
empty or one-frame sequence, an unreadable frame. No errata are published.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "oulu_casia"
FPS = 25.0
ROOT_DIRS = ("OriginalImg", "Original_Img", "OriginalImage")
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
# Camera x lighting; the first is the plain config name. Near-infrared and
# dark frames defeat the face detector more often: centre crop as fallback.
VARIANTS = {
    "VL_Strong": "dlib", "VL_Weak": "dlib", "VL_Dark": "dlib_or_center",
    "NI_Strong": "dlib_or_center", "NI_Weak": "dlib_or_center",
    "NI_Dark": "dlib_or_center",
}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Oulu-CASIA NIR&VIS is licensed and cannot be downloaded automatically.
Request it from the Center for Machine Vision and Signal Analysis, University
of Oulu (Guoying Zhao): https://www.oulu.fi/en/university/faculties-and-units/
faculty-information-technology-and-electrical-engineering/
center-machine-vision-and-signal-analysis (Oulu-CASIA NIR&VIS facial
expression database; sign the license agreement).

Unpack it so that manual_dir holds (one extra folder level, e.g.
Oulu_CASIA_NIR_VIS/OriginalImg/, is found too):

  <manual_dir>/OriginalImg/VL/Strong/P001/Happiness/000.jpeg ...
  <manual_dir>/OriginalImg/NI/Dark/P001/Anger/000.jpeg ...

Cameras VL, NI; lighting Strong, Weak, Dark; emotions Anger, Disgust, Fear,
Happiness, Sadness, Surprise (labels come from these folder names).
"""

PROTOCOLS = {
    "6class": (EMOTIONS, None),
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC_3CLASS),
}


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """Oulu-CASIA sequences (neutral -> peak) of one camera x lighting, one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = {**corpus.RELEASE_NOTES, "1.2.0": "First release of oulu_casia."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, variants=VARIANTS,
                                        description="Oulu-CASIA")
  DEFAULT_CONFIG_NAME = "6class_112"
  CORPUS = CORPUS
  TITLE = "Oulu-CASIA"
  PROTOCOLS = PROTOCOLS
  EMOTIONS = frozenset(EMOTIONS)
  HOMEPAGE = ("https://www.oulu.fi/en/university/faculties-and-units/"
              "faculty-information-technology-and-electrical-engineering/"
              "center-machine-vision-and-signal-analysis")
  CITATION = """\
@article{zhao2011oulucasia,
  title={Facial expression recognition from near-infrared videos},
  author={Zhao, Guoying and Huang, Xiaohua and Taini, Matti and Li, Stan Z. and Pietik{\\"a}inen, Matti},
  journal={Image and Vision Computing}, volume={29}, number={9}, pages={607--619}, year={2011}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    if corpus_io.find_child(manual, "VL", "NI", kind="dir"):
      root = manual   # manual_dir is the OriginalImg folder itself
    else:
      root = corpus_io.require_path(
          corpus_io.find_nested(manual, *ROOT_DIRS, kind="dir"),
          self.TITLE, "frame folder OriginalImg/", manual, instr)
    camera, lighting = (self.builder_config.variant or "VL_Strong").split("_")
    cam = corpus_io.require_path(corpus_io.find_child(root, camera, kind="dir"),
                                 self.TITLE, f"camera folder {camera}/", root, instr)
    light = corpus_io.require_path(corpus_io.find_child(cam, lighting, kind="dir"),
                                   self.TITLE, f"lighting folder {camera}/{lighting}/",
                                   cam, instr)
    plans = []
    for subj in corpus_io.subfolders(light):
      subj_dir = os.path.join(light, subj)
      # Thumbs.db and other files next to the emotion folders are not listed.
      for emo in corpus_io.subfolders(subj_dir):
        folder = os.path.join(subj_dir, emo)
        where = f"{subj}/{emo}"
        label = self.emotion_label(emo, where, skips)
        if label is None:
          continue
        files = clips.sequence_files(folder, where, skips)
        if files is None:
          continue
        last = len(files) - 1
        plans.append(clips.ClipPlan(
            subject=f"{CORPUS}/{subj}", clip=emo, files=files, emotion=emo,
            action_units="", label=label, onset=0, apex=last, offset=last,
            fps=FPS, apex_annotated=True))   # the sequence ends at its peak
    return plans
