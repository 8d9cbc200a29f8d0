"""CAS(ME)^3 part A (Li et al., IEEE TPAMI 2022): 860 micro-expressions, 100 subjects, 30 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (sheet 'label', else the first)
has Subject ('spNO.1'), Filename ('a'), Onset, Apex, Offset (JPEG indices:
`part_A/spNO.1/a/color/<index>.jpg`), AU, Objective class, emotion. One
Filename holds several micro-expressions, so the clip id is
'<Filename>_<Onset>'. Folder case differs from the sheet ('spNo.1'): matched
ignoring case. The release has dropped frames: up to `MAX_MISSING` missing
frames inside onset..offset are tolerated (noted), more -> skip.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import corpus

CORPUS = "casme3"
FPS = 30.0
MAX_MISSING = 3
XLSX_RE = r"cas\(?me\)?\^?3.*part.?A.*ME.*label.*\.xlsx"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CAS(ME)^3 is licensed and cannot be downloaded automatically. Request it from
the Institute of Psychology, Chinese Academy of Sciences (Fu Xiaolan's lab):
http://casme.psych.ac.cn/casme/e4; sign the release agreement.

Unpack part A so that manual_dir holds:

  <manual_dir>/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx
        (sheet 'label': Subject, Filename, Onset, Apex, Offset, AU,
         Objective class, emotion)
  <manual_dir>/part_A/spNO.1/a/color/1.jpg ...
        (the release's data/part_A_split/part_A/ folder also works)

Onset/Apex/Offset are the JPEG indices in the file names.
"""

PROTOCOLS = {
    "7class": (("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
               {"happiness": "happy", "sadness": "sad", "other": "others"}),
    "4class": (("negative", "positive", "surprise", "others"),
               dict(corpus.MEGC_3CLASS, others="others", other="others")),
    "3class": (corpus.MEGC_3CLASS_NAMES, corpus.MEGC_3CLASS),
}


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """CAS(ME)^3 part A micro-expression clips (onset..offset), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = corpus.RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, description="CAS(ME)^3 part A")
  DEFAULT_CONFIG_NAME = "7class_112"
  CORPUS = CORPUS
  TITLE = "CAS(ME)^3 part A"
  PROTOCOLS = PROTOCOLS
  HOMEPAGE = "http://casme.psych.ac.cn/casme/e4"
  CITATION = """\
@article{li2022casme3,
  title={{CAS(ME)$^3$}: A third generation facial spontaneous micro-expression database with depth information and high ecological validity},
  author={Li, Jingting and Dong, Zizhao and Lu, Shaoyuan and Wang, Su-Jing and Yan, Wen-Jing and Ma, Yinhuan and Liu, Ye and Huang, Changbing and Fu, Xiaolan},
  journal={IEEE TPAMI}, year={2022}}"""

  def _plan(self, manual: str, skips: corpus.SkipLog) -> list[corpus.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    xlsx = corpus.require_path(corpus.find_file_glob(manual, XLSX_RE), self.TITLE,
                               "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", manual,
                               instr)
    root = corpus.find_child(manual, "part_A", kind="dir")
    if root is None:
      split = corpus.find_child(os.path.join(manual, "data"), "part_A_split", kind="dir")
      root = corpus.find_child(split, "part_A", kind="dir") if split else None
    corpus.require_path(root, self.TITLE, "frame folder part_A/", manual, instr)
    sheets = corpus.sheet_names(xlsx)
    sheet = next((s for s in sheets if s.lower() == "label"), 0)
    try:
      rows = corpus.read_xlsx_rows(
          xlsx, ["Subject", "Filename", "Onset", "Apex", "Offset"], sheet=sheet)
    except ValueError as e:
      raise corpus.manual_dir_error(self.TITLE, str(e), instr) from e
    plans = []
    for r in rows:
      subj, name = corpus.cell_str(r.get("subject")), corpus.cell_str(r.get("filename"))
      onset, offset = corpus.cell_int(r.get("onset")), corpus.cell_int(r.get("offset"))
      where = f"{subj}/{name}_{onset}" if subj and name else f"row {r['_row']}"
      # Older copies carry an 'Expression type' column mixing in macro rows.
      etype = corpus.cell_str(r.get("expressiontype")).lower()
      if etype and "micro" not in etype:
        continue
      if not subj or not name or onset is None or offset is None:
        skips.skip("bad annotation row", where, f"{xlsx} row {r['_row']}")
        continue
      subj_dir = corpus.find_child(root, subj, kind="dir")
      clip_dir = corpus.find_child(subj_dir, name, kind="dir") if subj_dir else None
      folder = corpus.find_child(clip_dir, "color", kind="dir") if clip_dir else None
      if folder is None:
        skips.skip("missing folder", where, f"{subj}/{name}/color")
        continue
      try:
        files = corpus.frames_between(corpus.list_frames(folder), onset, offset,
                                      max_missing=MAX_MISSING)
      except corpus.FrameRangeError as e:
        skips.skip(e.reason, where, str(e))   # empty folder / onset > offset / missing frames
        continue
      if len(files) != offset - onset + 1:
        skips.note("dropped frames tolerated", where,
                   f"{offset - onset + 1 - len(files)} missing")
      emotion = corpus.cell_str(r.get("emotion"))
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      apex_cell = r.get("apex")
      o, a, f, guessed = corpus.clip_indices(corpus.cell_int(apex_cell), files)
      if guessed:   # noted only for clips that are kept
        skips.note(corpus.APEX_MISSING, where, f"Apex={apex_cell!r}")
      plans.append(corpus.ClipPlan(
          subject=f"{CORPUS}/{subj}", clip=f"{name}_{onset}", files=files,
          emotion=emotion, action_units=corpus.cell_str(r.get("au") or r.get("actionunits")),
          label=label, onset=o, apex=a, offset=f, fps=FPS,
          apex_annotated=not guessed))
    return plans
