"""SMIC (Li et al., FG 2013): HS (164 clips, 16 subjects, 100 fps), VIS and NIR (71 clips, 8 subjects, 25 fps).

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

Labels come from the folder names (negative / positive / surprise). The
release has no onset/apex/offset: each clip folder IS the micro-expression,
so `frames` is the whole clip, onset = 0, offset = T-1 and apex = the
middle index (T-1)//2 (a stand-in, noted as such in the build log, and
`apex_annotated` = False in every record, so the input pipeline gives
`apex_index = -1` and the ranking loss does not take it for an annotation).
`non_micro` folders (and any other folder beside `micro/`) are counted
exclusions, never defects. The `3class` HS config is restricted to the
official MEGC 2019 composite list (164 clips, 16 subjects).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "smic"
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
EMOTIONS = ("negative", "positive", "surprise")
# The repair noted for every clip (build_report.json "repaired").
NO_APEX = "apex = middle (SMIC has no apex)"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SMIC is licensed and cannot be downloaded automatically. Request it from the
Center for Machine Vision and Signal Analysis, University of Oulu (Guoying
Zhao / Xiaobai Li): https://www.oulu.fi/en/university/faculties-and-units/
faculty-information-technology-and-electrical-engineering/center-machine-
vision-and-signal-analysis (formerly http://www.cse.oulu.fi/SMICDatabase);
sign the licence agreement.

Unpack it so that manual_dir holds (HS for the default configs, VIS / NIR
for the '*_vis' / '*_nir' configs):

  <manual_dir>/SMIC_all_raw/HS/s1/micro/negative/s1_ne_01/image000001.bmp ...
  <manual_dir>/SMIC_all_raw/HS/s1/micro/positive/s1_po_01/...
  <manual_dir>/SMIC_all_raw/HS/s1/micro/surprise/s1_sur_01/...
  <manual_dir>/SMIC_all_raw/VIS/s1/micro/negative/...
  <manual_dir>/SMIC_all_raw/NIR/s1/micro/negative/...

No annotation file is needed: labels come from the folder names.
"""

PROTOCOLS = {"3class": (EMOTIONS, None)}
# MEGC 2019 composite (See et al., FG 2019): SMIC-HS as released, restricted
# to the official list; VIS and NIR are not in the composite.
MEMBERSHIP = {"3class": labels.MEGC2019}
NON_MICRO = "non_micro folder (not a micro-expression)"


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """SMIC micro-expression clips (whole clip), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = {
      **corpus.RELEASE_NOTES,
      "1.1.0": ("Records carry `apex_annotated`, always False for SMIC (its "
                "apex is the middle-frame stand-in). Rebuild: 1.0.0 builds are "
                "not read by this version."),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(
      PROTOCOLS, variants={"HS": "dlib", "VIS": "dlib", "NIR": "dlib"},
      description="SMIC")
  DEFAULT_CONFIG_NAME = "3class_112"
  CORPUS = CORPUS
  TITLE = "SMIC"
  PROTOCOLS = PROTOCOLS
  MEMBERSHIP = MEMBERSHIP

  def membership(self):
    # Only the HS camera is in the MEGC 2019 composite.
    if (self.builder_config.variant or "HS").upper() != "HS":
      return None
    return super().membership()
  HOMEPAGE = "http://www.cse.oulu.fi/SMICDatabase"
  CITATION = """\
@inproceedings{li2013smic,
  title={A spontaneous micro-expression database: Inducement, collection and baseline},
  author={Li, Xiaobai and Pfister, Tomas and Huang, Xiaohua and Zhao, Guoying and Pietik{\\"a}inen, Matti},
  booktitle={IEEE FG}, year={2013}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    camera = self.builder_config.variant or "HS"
    base = corpus_io.find_nested(manual, "SMIC_all_raw", "SMIC", kind="dir") or manual
    root = corpus_io.require_path(corpus_io.find_nested(base, camera, kind="dir"),
                                  self.TITLE, f"SMIC_all_raw/{camera}/", base, instr)
    subjects = corpus_io.subfolders(root, skip_hidden=False)
    plans = []
    for subj in subjects:
      for other in sorted(os.listdir(os.path.join(root, subj))):
        o = os.path.join(root, subj, other)
        if other.lower() != "micro" and os.path.isdir(o):
          # non_micro/<clip>: counted per clip folder, never a defect.
          for clip in corpus_io.subfolders(o, skip_hidden=False):
            skips.exclude(NON_MICRO, f"{subj}/{clip}", other)
      micro = corpus_io.find_child(os.path.join(root, subj), "micro", kind="dir")
      if micro is None:
        skips.skip("no micro/ folder", subj)
        continue
      for emo_dir in corpus_io.subfolders(micro, skip_hidden=False):
        emo_path = os.path.join(micro, emo_dir)
        for clip in corpus_io.subfolders(emo_path, skip_hidden=False):
          folder = os.path.join(emo_path, clip)
          where = f"{subj}/{clip}"
          files = clips.sequence_files(folder, where, skips)
          if files is None:
            continue
          label = self.emotion_label(emo_dir, where, skips)
          if label is None:
            continue
          skips.note(NO_APEX, where)
          plans.append(clips.ClipPlan(
              subject=f"{CORPUS}/{subj}", clip=clip, files=files,
              emotion=emo_dir, action_units="", label=label,
              onset=0, apex=(len(files) - 1) // 2, offset=len(files) - 1,
              fps=FPS.get(camera.upper(), 0.0), apex_annotated=False))
    if not subjects:
      raise corpus_io.manual_dir_error(
          self.TITLE, f"no subject folders (s1, s2, ...) in {root!r}.", instr)
    return plans
