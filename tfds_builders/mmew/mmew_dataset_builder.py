"""MMEW (Ben et al., IEEE TPAMI 2021): 300 micro-expression clips (90 fps) and 900 macro-expression images.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

Micro-expressions (configs `7class_*`, `6class_*`, `3class_*`): `MMEW_Micro_Exp.xlsx`
has Subject (an int, 1 -> 'S01'), Filename ('S01-01-001' =
PersonIndex-EmotionIndex-SampleIndex), OnsetFrame, ApexFrame, OffsetFrame,
Action Units, Estimated Emotion, remarks. Each clip folder holds the sample
as cut by the authors, `<n>.jpg` from 1 (every released row has onset 1),
under its emotion folder: `Micro_Expression/<emotion>/<Filename>/<n>.jpg`
(the loaders' layout: tvaranka/meb, HTNet) or, as the authors' page
describes it, `Micro_Expression/<subject>/<emotion>/<Filename>/` (both are
read). Quirk: the sheet's `others` clips live in a folder named
`repression` (the authors' page lists that folder; tvaranka/meb maps
others -> repression to find them).

Repairs (listed under `repaired` in `build_report.json`, never defects):
  * ApexFrame blank or not a frame of the clip -> apex = middle
    (`apex_annotated` False). tvaranka/meb reports 16 rows "missing apex"
    and substitutes its own estimates; those are not published corrections
    (and are keyed by DataFrame row, not sample), so they are not applied.
  * OffsetFrame blank -> the last frame of the clip folder (the folder is
    the authors' cut of the sample).
  * OffsetFrame past the last frame on disk -> cut to the last frame.
No errata are published for MMEW, so `ERRATA` is empty.

Macro-expressions (config `macro_*`): `Macro_Expression/<subject>/<emotion>/
<S03-01-001>.jpg` (the authors' page; `Macro_Expression/<emotion>/...` is
read too). Each macro sample is ONE image, labelled by its folder; a record
holds that single frame (onset = apex = offset = 0). They carry no motion:
MA2MI's future-frame pretraining cannot use them (it refuses clips under 3
frames, naming this reason).
"""

from __future__ import annotations

import os
import re

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "mmew"
FPS = 90.0
XLSX_RE = r"MMEW_Micro_Exp.*\.xlsx"
ROOT_DIRS = ("MMEW_Final", "MMEW")
MICRO_DIRS = ("Micro_Expression", "Micro-Expression", "MicroExpression")
MACRO_DIRS = ("Macro_Expression", "Macro-Expression", "MacroExpression")
MICRO_EMOTIONS = ("happiness", "surprise", "anger", "disgust", "fear",
                  "sadness", "others")
BASIC = ("happiness", "surprise", "anger", "disgust", "fear", "sadness")
# Sheet emotion -> the folder names the release may file it under.
FOLDERS = {"others": ("others", "repression", "other")}
OFFSET_MISSING = "offset missing -> last frame of the clip folder"
MACRO = "macro"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
MMEW (Micro-and-Macro Expression Warehouse) is licensed and cannot be
downloaded automatically. Request it from Xianye Ben's lab, Shandong
University: http://www.dpailab.com/database.html (sign the license agreement
and send a scanned copy to the address given there).

Unpack it so that manual_dir holds (one extra folder level, e.g.
MMEW_Final/MMEW_Final/, is found too):

  <manual_dir>/MMEW_Micro_Exp.xlsx          (or inside MMEW_Final/; columns
                                             Subject, Filename, OnsetFrame,
                                             ApexFrame, OffsetFrame, Action
                                             Units, Estimated Emotion)
  <manual_dir>/MMEW_Final/Micro_Expression/happiness/S01-01-001/1.jpg ...
        (or Micro_Expression/S01/happiness/S01-01-001/1.jpg)
  <manual_dir>/MMEW_Final/Macro_Expression/S01/happiness/S01-01-001.jpg ...
        (configs 'macro_*' only; no sheet needed)

Several sheet versions side by side (MMEW_Micro_Exp.xlsx and _v2.xlsx):
choose one with --annotation FILE.
"""

PROTOCOLS = {
    # The sheet's seven classes.
    "7class": (MICRO_EMOTIONS, None),
    # The six basic emotions, 'others' outside the protocol (label -1): the
    # class set of HTNet's MMEW_Micro_Exp_delete_others.csv.
    "6class": (BASIC, None),
    # negative (anger, disgust, fear, sadness) / positive / surprise, others
    # outside: the MEGC 2019 folding, as this repository applies it to the
    # corpora outside the official composite (no official MMEW list exists).
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC_3CLASS),
    # The macro-expression images (six basic emotions, from the folders).
    MACRO: (BASIC, None),
}


def subject_name(cell) -> str | None:
  """Sheet Subject (1, 1.0, '01', 'S01') -> 'S01'."""
  m = re.fullmatch(r"(?:s)?0*(\d+)", corpus_io.cell_str(cell), re.IGNORECASE)
  return f"S{int(m.group(1)):02d}" if m else None


def subject_of_sample(name: str) -> str | None:
  """'S03-01-002' (PersonIndex-EmotionIndex-SampleIndex) -> 'S03'."""
  m = re.match(r"s0*(\d+)[-_]", name, re.IGNORECASE)
  return f"S{int(m.group(1)):02d}" if m else None


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """MMEW micro-expression clips (onset..offset) or macro images, one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = {**corpus.RELEASE_NOTES, "1.2.0": "First release of mmew."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, description="MMEW")
  DEFAULT_CONFIG_NAME = "7class_112"
  CORPUS = CORPUS
  TITLE = "MMEW"
  PROTOCOLS = PROTOCOLS
  EMOTIONS = frozenset(MICRO_EMOTIONS)
  HOMEPAGE = "http://www.dpailab.com/database.html"
  CITATION = """\
@article{ben2021mmew,
  title={Video-based Facial Micro-Expression Analysis: A Survey of Datasets, Features and Algorithms},
  author={Ben, Xianye and Ren, Yi and Zhang, Junping and Wang, Su-Jing and Kpalma, Kidiyo and Meng, Weixiao and Liu, Yong-Jin},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence}, volume={44}, number={9}, pages={5826--5846}, year={2022}}"""

  def _base(self, manual: str) -> str:
    """The unpacked `MMEW_Final` folder (or manual_dir itself)."""
    return corpus_io.find_nested(manual, *ROOT_DIRS, kind="dir") or manual

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    if self.builder_config.protocol == MACRO:
      return self._plan_macro(manual, skips)
    return self._plan_micro(manual, skips)

  # --------------------------------------------------------------------------

  def _plan_micro(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    root = corpus_io.require_path(
        corpus_io.find_nested(self._base(manual), *MICRO_DIRS, kind="dir"),
        self.TITLE, "frame folder Micro_Expression/", manual, instr)
    xlsx = self.locate_annotation(manual, XLSX_RE, subdirs=ROOT_DIRS)
    try:
      rows = corpus_io.read_xlsx_rows(
          xlsx, ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame"])
    except ValueError as e:
      raise corpus_io.manual_dir_error(self.TITLE, str(e), instr) from e
    fields = {"onset": "onsetframe", "apex": "apexframe", "offset": "offsetframe"}
    plans = []
    for r in rows:
      clip = corpus_io.cell_str(r.get("filename"))
      subj = subject_name(r.get("subject")) or subject_of_sample(clip)
      where = f"{subj}/{clip}" if subj and clip else f"row {r['_row']}"
      labels.apply_errata(self.ERRATA, (where, f"row {r['_row']}"), r, fields,
                          skips, where)
      onset = corpus_io.cell_int(r.get("onsetframe"))
      if not subj or not clip or onset is None:
        skips.skip(skiplog.BAD_ROW, where, f"{xlsx} row {r['_row']}")
        continue
      emotion = corpus_io.cell_str(r.get("estimatedemotion"))
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      folder = self._micro_folder(root, subj, emotion, clip)
      if folder is None:
        skips.skip(skiplog.MISSING_FOLDER, where,
                   f"{clip}/ under {os.path.basename(root)}/<emotion>/")
        continue
      on_disk = corpus_io.list_frames(folder)
      offset_cell = r.get("offsetframe")
      offset = corpus_io.cell_int(offset_cell)
      if offset is None:
        nums = [n for n in map(corpus_io.frame_number, on_disk) if n is not None]
        if not nums:
          skips.skip(skiplog.EMPTY_FOLDER, where, folder)
          continue
        offset = max(nums)
        skips.note(OFFSET_MISSING, where, f"OffsetFrame={offset_cell!r} -> {offset}")
      files = clips.clip_files(on_disk, onset, offset, where, skips)
      if files is None:
        continue
      o, a, f, guessed = clips.annotated_apex(r.get("apexframe"), files, where,
                                              skips, "ApexFrame")
      plans.append(clips.ClipPlan(
          subject=f"{CORPUS}/{subj}", clip=clip, files=files, emotion=emotion,
          action_units=corpus_io.cell_str(r.get("actionunits")), label=label,
          onset=o, apex=a, offset=f, fps=FPS, apex_annotated=not guessed))
    return plans

  @staticmethod
  def _micro_folder(root: str, subj: str, emotion: str, clip: str) -> str | None:
    """`<root>/[<subject>/]<emotion folder>/<clip>/`, or None."""
    names = FOLDERS.get(emotion.strip().lower(), (emotion.strip(),))
    for parent in (root, corpus_io.find_child(root, subj, kind="dir")):
      if parent is None:
        continue
      for name in names:
        emo_dir = corpus_io.find_child(parent, name, kind="dir")
        found = emo_dir and corpus_io.find_child(emo_dir, clip, kind="dir")
        if found:
          return found
    return None

  # --------------------------------------------------------------------------

  def _plan_macro(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    root = corpus_io.require_path(
        corpus_io.find_nested(self._base(manual), *MACRO_DIRS, kind="dir"),
        self.TITLE, "folder Macro_Expression/", manual,
        MANUAL_DOWNLOAD_INSTRUCTIONS)
    known = {e.lower() for e in BASIC}
    # (subject folder or None, emotion folder) pairs.
    emotion_dirs = []
    for d in corpus_io.subfolders(root):
      p = os.path.join(root, d)
      if d.lower() in known:
        emotion_dirs.append((None, p))
      else:
        emotion_dirs.extend((d, os.path.join(p, e)) for e in corpus_io.subfolders(p))
    plans = []
    for subj_dir, emo_dir in emotion_dirs:
      emotion = os.path.basename(emo_dir)
      rel = os.path.relpath(emo_dir, root)
      if emotion.lower() not in known:
        skips.skip(skiplog.UNKNOWN_EMOTION, rel, repr(emotion))
        continue
      images = corpus_io.list_frames(emo_dir)
      for d in sorted(os.listdir(emo_dir)):
        if os.path.isdir(os.path.join(emo_dir, d)) and not d.startswith("."):
          # Not a layout the authors describe: say so rather than drop it.
          skips.skip("folder among the macro images", f"{rel}/{d}",
                     "MMEW macro samples are single images")
      if not images:
        skips.skip(skiplog.EMPTY_FOLDER, rel, emo_dir)
        continue
      for img in images:
        sample = os.path.splitext(os.path.basename(img))[0]
        subj = subject_of_sample(sample) or (subj_dir and subject_name(subj_dir))
        where = f"{subj}/{sample}" if subj else f"{rel}/{sample}"
        if not subj:
          skips.skip("no subject in file name", where, img)
          continue
        plans.append(clips.ClipPlan(
            subject=f"{CORPUS}/{subj}", clip=sample, files=[img],
            emotion=emotion, action_units="",
            label=self.label_for(emotion.lower()), onset=0, apex=0, offset=0,
            fps=FPS,
            # A still is its own peak: the sample IS the expression image.
            apex_annotated=True))
    return plans
