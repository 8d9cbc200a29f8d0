"""CK+ (Lucey et al., CVPR-W 2010): posed MACRO-expressions, 123 subjects, 593 sequences, 30 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

Each sequence runs from neutral to the peak, so `frames` is the whole
sequence, onset = 0, apex = offset = T-1 (the peak frame, which is the
frame the emotion/FACS files are named after). That peak is part of the
corpus' coding (each sequence is recorded and labelled onset -> peak), not
a stand-in, so `apex_annotated` is True. Only the 327 sequences with
an `Emotion/..._emotion.txt` have a label; the other 266 are counted
EXCLUSIONS ("no emotion label"), not defects, so a strict build passes on
the release. Nested unpacks (`extended-cohn-kanade-images/cohn-kanade-images`,
`Emotion_labels/Emotion`, `FACS_labels/FACS`) are found. The FACS file is a numeric table (AU,
intensity); `action_units` renders it as 'AU' numbers joined by '+', with
the intensity letter when coded (1=A .. 5=E), e.g. '1+2C+5'.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "ck_plus"
FPS = 30.0
# The official CK+ emotion codes (0 = neutral never labels a sequence).
CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy",
         6: "sadness", 7: "surprise"}

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CK+ (Extended Cohn-Kanade) is licensed and cannot be downloaded
automatically. Request it from Jeffrey Cohn's lab, University of Pittsburgh:
https://www.jeffcohn.net/Resources/ (agree to the terms of use).

Unpack it so that manual_dir holds:

  <manual_dir>/cohn-kanade-images/S005/001/S005_001_00000001.png ...
  <manual_dir>/Emotion/S005/001/S005_001_00000011_emotion.txt
  <manual_dir>/FACS/S005/001/S005_001_00000011_facs.txt      (optional)

(as unpacked, extended-cohn-kanade-images/cohn-kanade-images/,
Emotion_labels/Emotion/ and FACS_labels/FACS/ work too)

Emotion codes: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness,
7 surprise.
"""

NO_LABEL = "no emotion label"

PROTOCOLS = {
    "7class": (tuple(CODES.values()), None),
    # Contempt (18 sequences) is often left out.
    "6class": (("anger", "disgust", "fear", "happy", "sadness", "surprise"), None),
    # Macro-expressions folded as the MEGC 2019 SAMM rule folds micro ones
    # (every negative emotion -> negative), for MA2MI pretraining; CK+ is
    # not in the composite and has no official 3-class list.
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC_3CLASS),
}


def _numbers(path: str) -> list[list[float]]:
  with open(path) as f:
    return [[float(x) for x in line.split()] for line in f if line.strip()]


def facs_string(path: str | None) -> str:
  if path is None:
    return ""
  out = []
  for row in _numbers(path):
    au = int(row[0])
    inten = int(row[1]) if len(row) > 1 else 0
    out.append(f"{au}{'ABCDE'[inten - 1]}" if 1 <= inten <= 5 else str(au))
  return "+".join(out)


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """CK+ labelled sequences (neutral -> peak), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = {
      **corpus.RELEASE_NOTES,
      "1.1.0": ("Records carry `apex_annotated`, always True for CK+ (the last "
                "frame is the coded peak). Rebuild: 1.0.0 builds are not read "
                "by this version."),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, description="CK+")
  DEFAULT_CONFIG_NAME = "7class_112"
  CORPUS = CORPUS
  TITLE = "CK+"
  PROTOCOLS = PROTOCOLS
  HOMEPAGE = "https://www.jeffcohn.net/Resources/"
  CITATION = """\
@inproceedings{lucey2010ckplus,
  title={The Extended {Cohn-Kanade} Dataset ({CK+}): A complete dataset for action unit and emotion-specified expression},
  author={Lucey, Patrick and Cohn, Jeffrey F. and Kanade, Takeo and Saragih, Jason and Ambadar, Zara and Matthews, Iain},
  booktitle={CVPR Workshops}, year={2010}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    images = corpus_io.require_path(
        corpus_io.find_nested(manual, "cohn-kanade-images", "extended-cohn-kanade-images",
                              kind="dir"),
        self.TITLE, "frame folder cohn-kanade-images/", manual, instr)
    emotion_root = corpus_io.require_path(
        corpus_io.find_nested(manual, "Emotion", "Emotion_labels", kind="dir"),
        self.TITLE, "label folder Emotion/", manual, instr)
    facs_root = corpus_io.find_nested(manual, "FACS", "FACS_labels", kind="dir")
    plans = []
    for subj in corpus_io.subfolders(images, skip_hidden=False):
      for seq in corpus_io.subfolders(os.path.join(images, subj), skip_hidden=False):
        folder = os.path.join(images, subj, seq)
        where = f"{subj}/{seq}"
        emo_dir = os.path.join(emotion_root, subj, seq)
        emo_file = corpus_io.find_file_glob(emo_dir, r".*_emotion\.txt")
        if emo_file is None:
          # 266 of the 593 sequences carry no emotion by design.
          skips.exclude(NO_LABEL, where)
          continue
        files = clips.sequence_files(folder, where, skips)
        if files is None:
          continue
        try:
          code = int(_numbers(emo_file)[0][0])
        except (IndexError, ValueError):
          skips.skip("bad emotion file", where, emo_file)
          continue
        if code not in CODES:
          skips.skip(skiplog.UNKNOWN_EMOTION, where, f"code {code} in {emo_file}")
          continue
        facs = (corpus_io.find_file_glob(os.path.join(facs_root, subj, seq),
                                         r".*_facs\.txt") if facs_root else None)
        emotion = CODES[code]
        last = len(files) - 1
        plans.append(clips.ClipPlan(
            subject=f"{CORPUS}/{subj}", clip=seq, files=files, emotion=emotion,
            action_units=facs_string(facs), label=self.label_for(emotion),
            onset=0, apex=last, offset=last, fps=FPS,
            apex_annotated=True))   # the coded peak frame
    return plans
