"""CAS(ME)^3 part A (Li et al., IEEE TPAMI 2022): 860 micro-expressions, 94 subjects in the v2 sheet, 30 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

`cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (the release keeps it in
`part_A/annotation/`; sheet 'label', else the first; EVERY cell is text)
has Subject ('spNO.1'), Filename ('a'; one is 'J'), Onset, Apex, Offset
(JPEG indices: `part_A/spNO.1/a/color/<index>.jpg`), AU, Objective class,
emotion ('Others' as well as 'others'). One Filename holds several
micro-expressions, so the clip id is '<Filename>_<Onset>'. Folder case
differs from the sheet ('spNo.1', 'j'): matched ignoring case.

Release faults handled: the `ERRATA` table (apex < onset, offset 3460,
onset > offset, onset 0 without a 0.jpg, offset 0), each applied fix listed
under `repaired`; frames dropped at a clip's start (about 10 % of clips):
the clip keeps the frames that exist when at least `MIN_FRAMES` remain;
up to `MAX_MISSING` frames dropped inside onset..offset are tolerated
(noted), more -> skip. Checked against the real v2 sheet (with every frame
assumed on disk): 860 clips, 94 subjects, unique ids, 7 errata, no defect.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "casme3"
FPS = 30.0
MAX_MISSING = 3
# A clip whose first frames were dropped keeps the frames that exist when
# onset..offset still holds at least this many (the trainers' clip length,
# `input.num_frames`, is 8 in configs/).
MIN_FRAMES = 8
START_DROPPED = "frames missing at clip start -> kept the rest"
XLSX_RE = r"cas\(?me\)?\^?3.*part.?A.*ME.*label.*\.xlsx"

# Published corrections of the v2 label sheet. Key: '<Subject>/<Filename>/<Onset
# as released>'. Sources: the official repository's error list
# (jingtingEmmaLi/CAS-ME-3, exception/casme3_partA_error_list_ZhouJu.xlsx:
# "0.jpg does not exist, 1.jpg does: onset and apex +1") and tvaranka/meb
# (meb/datasets/datasets.py, class Casme3, DataFrame rows 128, 708, 749,
# 750, 796, 798 of the same sheet).
_OFFICIAL = "jingtingEmmaLi/CAS-ME-3 exception/casme3_partA_error_list_ZhouJu.xlsx"
_MEB = "tvaranka/meb meb/datasets/datasets.py (Casme3)"
ERRATA = (
    labels.Erratum("spNO.149/d/112", "apex", "83", 160, _MEB),        # apex < onset
    labels.Erratum("spNO.214/c/5", "offset", "3460", 34, _MEB),       # mistyped offset
    labels.Erratum("spNO.216/d/3647", "onset", "3647", 2647, _MEB),   # onset > offset
    labels.Erratum("spNO.216/e/0", "onset", "0", 1, _OFFICIAL),       # no 0.jpg
    labels.Erratum("spNO.216/e/0", "apex", "0", 1, _OFFICIAL),
    labels.Erratum("spNO.40/e/1812", "offset", "0", 1845, _MEB),      # offset 0
    labels.Erratum("spNO.40/e/2327", "offset", "0", 2403, _MEB),
)

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CAS(ME)^3 is licensed and cannot be downloaded automatically. Request it from
the Institute of Psychology, Chinese Academy of Sciences (Fu Xiaolan's lab):
http://casme.psych.ac.cn/casme/e4; sign the release agreement.

Unpack part A so that manual_dir holds:

  <manual_dir>/part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx
        (sheet 'label': Subject, Filename, Onset, Apex, Offset, AU,
         Objective class, emotion; every cell is text)
  <manual_dir>/part_A/spNO.1/a/color/1.jpg ...
        (the release's data/part_A_split/part_A/ folder also works; the
         sheet may also sit directly in manual_dir)

Onset/Apex/Offset are the JPEG indices in the file names.
"""

PROTOCOLS = {
    "7class": (("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
               {"happiness": "happy", "sadness": "sad", "other": "others"}),
    "4class": (("negative", "positive", "surprise", "others"),
               dict(labels.MEGC_3CLASS, others="others", other="others")),
    # 4-/3-class as in Li et al. (TPAMI 2022, CAS(ME)^3 baselines): anger,
    # disgust, fear, sad -> negative; happy -> positive; no official list.
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC_3CLASS),
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
  ERRATA = ERRATA
  HOMEPAGE = "http://casme.psych.ac.cn/casme/e4"
  CITATION = """\
@article{li2022casme3,
  title={{CAS(ME)$^3$}: A third generation facial spontaneous micro-expression database with depth information and high ecological validity},
  author={Li, Jingting and Dong, Zizhao and Lu, Shaoyuan and Wang, Su-Jing and Yan, Wen-Jing and Ma, Yinhuan and Liu, Ye and Huang, Changbing and Fu, Xiaolan},
  journal={IEEE TPAMI}, year={2022}}"""

  def _frame_root(self, manual: str) -> str | None:
    """The folder holding spNO.* subject folders, as the release unpacks."""
    def has_subjects(d):
      return d is not None and os.path.isdir(d) and any(e.lower().startswith("spno")
                                   for e in os.listdir(d))
    part_a = corpus_io.find_nested(manual, "part_A", kind="dir")
    candidates = [part_a]
    for base in (manual, part_a):
      if base is None:
        continue
      split = corpus_io.find_child(corpus_io.find_child(base, "data", kind="dir") or "",
                                   "part_A_split", kind="dir")
      candidates.append(corpus_io.find_child(split, "part_A", kind="dir") if split else None)
    return next((c for c in candidates if has_subjects(c)), None)

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    # The release keeps the sheet in part_A/annotation/, not beside the frames.
    xlsx = self.locate_annotation(manual, XLSX_RE,
                                  subdirs=("annotation", "part_A/annotation"))
    root = self._frame_root(manual)
    corpus_io.require_path(root, self.TITLE, "frame folder part_A/ (spNO.* folders)",
                           manual, instr)
    sheets = corpus_io.sheet_names(xlsx)
    sheet = next((s for s in sheets if s.lower() == "label"), 0)
    try:
      rows = corpus_io.read_xlsx_rows(
          xlsx, ["Subject", "Filename", "Onset", "Apex", "Offset"], sheet=sheet)
    except ValueError as e:
      raise corpus_io.manual_dir_error(self.TITLE, str(e), instr) from e
    plans = []
    for r in rows:
      subj, name = corpus_io.cell_str(r.get("subject")), corpus_io.cell_str(r.get("filename"))
      released_onset = corpus_io.cell_str(r.get("onset"))
      key = f"{subj}/{name}/{released_onset}"
      # Every cell of the v2 sheet is text ('355'): cell_int reads it.
      labels.apply_errata(self.ERRATA, key, r, {}, skips,
                          f"{subj}/{name}_{released_onset}")
      onset, offset = corpus_io.cell_int(r.get("onset")), corpus_io.cell_int(r.get("offset"))
      where = f"{subj}/{name}_{onset}" if subj and name else f"row {r['_row']}"
      # Older copies carry an 'Expression type' column mixing in macro rows.
      etype = corpus_io.cell_str(r.get("expressiontype")).lower()
      if etype and "micro" not in etype:
        skips.exclude(f"{etype} (not micro)", where)
        continue
      if not subj or not name or onset is None or offset is None or offset == 0:
        skips.skip(skiplog.BAD_ROW, where, f"{xlsx} row {r['_row']}")
        continue
      subj_dir = corpus_io.find_child(root, subj, kind="dir")
      # Filenames are lower-case letters, one is 'J': matched ignoring case.
      clip_dir = corpus_io.find_child(subj_dir, name, kind="dir") if subj_dir else None
      folder = corpus_io.find_child(clip_dir, "color", kind="dir") if clip_dir else None
      if folder is None:
        skips.skip(skiplog.MISSING_FOLDER, where, f"{subj}/{name}/color")
        continue
      on_disk = corpus_io.list_frames(folder)
      offset = clips.cut_offset(on_disk, onset, offset, where, skips)
      start = self._first_kept(on_disk, onset, offset, where, skips)
      files = clips.clip_files(on_disk, start, offset, where, skips,
                               max_missing=MAX_MISSING)
      if files is None:
        continue
      if len(files) != offset - start + 1:
        skips.note("dropped frames tolerated", where,
                   f"{offset - start + 1 - len(files)} missing")
      emotion = corpus_io.cell_str(r.get("emotion"))
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      o, a, f, guessed = clips.annotated_apex(r.get("apex"), files, where, skips,
                                              "Apex")
      plans.append(clips.ClipPlan(
          subject=f"{CORPUS}/{subj}", clip=f"{name}_{onset}", files=files,
          emotion=emotion, action_units=corpus_io.cell_str(r.get("au") or r.get("actionunits")),
          label=label, onset=o, apex=a, offset=f, fps=FPS,
          apex_annotated=not guessed))
    return plans

  @staticmethod
  def _first_kept(files, onset: int, offset: int, where: str,
                  skips: skiplog.SkipLog) -> int:
    """The onset, or the first frame on disk when the clip lost its first frames.

    About 10 % of part A's clips miss a few frames at the start; one that
    still holds `MIN_FRAMES` frames in onset..offset keeps them (a repair,
    reported with the number missing). Otherwise the onset is returned and
    `frames_between` reports the missing frames.
    """
    nums = sorted({n for n in (corpus_io.frame_number(f) for f in files) if n is not None})
    if onset in nums or onset > offset:
      return onset
    present = [n for n in nums if onset < n <= offset]
    if len(present) < MIN_FRAMES:
      return onset
    skips.note(START_DROPPED, where,
               f"{present[0] - onset} frames missing ({onset}..{present[0] - 1})")
    return present[0]
