"""Tiny fake copies of MMEW and Oulu-CASIA as released, made in code for tests.

Same conventions as `corpus_fixtures` (frame colour encodes the frame
NUMBER). The layouts and quirks are those of the real releases as public
loaders read them (tvaranka/meb, HTNet's MMEW list, the authors' MMEW page,
Oulu-CASIA loaders):

MMEW: `MMEW_Final/MMEW_Final/` (the archive's top folder repeated),
`MMEW_Micro_Exp.xlsx` next to the inner folder with Subject as an int,
clip folders `Micro_Expression/<emotion>/S01-01-001/1.jpg ..` holding the
clip from frame 1, the sheet's `others` filed under `repression/`, a blank
ApexFrame, a blank OffsetFrame, an offset past the last frame, text cells;
macro samples `Macro_Expression/S01/happiness/S01-01-001.jpg` (one image
each) and a `Thumbs.db`.

Oulu-CASIA: `OriginalImg/OriginalImg/{VL,NI}/{Strong,Weak}/P001/Anger/000.jpeg`,
`Thumbs.db` files, a subject without some emotion folders.

`defects=True` adds rows/folders that must be counted skips (errors under
strict); without it a fixture holds only repairs, so `--strict` passes.
"""

from __future__ import annotations

import os
import shutil

import corpus_fixtures as cf

MMEW_7 = ("happiness", "surprise", "anger", "disgust", "fear", "sadness", "others")
MMEW_6 = MMEW_7[:6]
MMEW_3 = {"anger": 0, "disgust": 0, "fear": 0, "sadness": 0, "happiness": 1,
          "surprise": 2}


def _thumbs(folder: str) -> None:
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "Thumbs.db"), "wb") as f:
    f.write(b"\xd0\xcf\x11\xe0 not an image")


def make_mmew(root: str, subject_level: bool = False, defects: bool = False,
              two_versions: bool = False) -> tuple[cf.Expected, cf.Expected]:
  """MMEW as unpacked; returns (micro Expected, macro Expected).

  `subject_level`: clip folders under `Micro_Expression/<subject>/<emotion>/`
  (the layout the authors' page describes). `two_versions`: a second sheet
  `MMEW_Micro_Exp_v2.xlsx` next to the first (the build must be told which).
  """
  outer = os.path.join(root, "MMEW_Final")
  base = os.path.join(outer, "MMEW_Final")
  micro = os.path.join(base, "Micro_Expression")
  rows = [("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
           "Action Units", "Estimated Emotion", "remarks")]
  clips = {}

  def clip(cell, subj, name, emotion, on, ap, off, au, disk, folder=None,
           keep=True):
    rows.append((cell, name, on, ap, off, au, emotion, None))
    parent = os.path.join(micro, subj) if subject_level else micro
    for n in range(1, disk + 1):
      cf.write_frame(os.path.join(parent, folder or emotion, name, f"{n}.jpg"), n)
    if not keep:
      return
    on, ap, off = (int(v) if isinstance(v, str) and v.isdigit() else v
                   for v in (on, ap, off))
    last = min(off, disk) if isinstance(off, int) else disk
    nums = list(range(on, last + 1))
    annotated = isinstance(ap, int) and on <= ap <= last
    apex = nums.index(ap) if annotated else (len(nums) - 1) // 2
    labels = {"7class": MMEW_7.index(emotion),
              "6class": MMEW_6.index(emotion) if emotion in MMEW_6 else -1,
              "3class": MMEW_3.get(emotion, -1)}
    clips[f"mmew/{subj}/{name}"] = cf.Clip(f"mmew/{subj}/{name}", nums, apex,
                                          emotion, labels, au,
                                          apex_annotated=annotated)

  clip(1, "S01", "S01-01-001", "happiness", 1, 3, 6, "6+12", 6)
  clip("1", "S01", "S01-02-001", "surprise", 1, 2, 5, "1+2+5", 5)
  # The sheet says 'others'; the release files the clip under repression/.
  clip(1, "S01", "S01-04-001", "others", 1, 4, 7, "L12", 7, folder="repression")
  clip(2, "S02", "S02-03-001", "disgust", 1, None, 6, "4+7", 6)    # apex blank
  # Offset past the last frame on disk (10 frames: also 9 < 10 in order).
  clip(2, "S02", "S02-07-001", "anger", 1, 5, 12, "R4+7", 10)
  clip(3, "S03", "S03-05-001", "fear", 1, 3, None, "4+5", 5)       # offset blank
  clip(3, "S03", "S03-06-001", "sadness", "1", "2", "4", "17", 4)  # text cells
  skips = {}
  if defects:
    clip(3, "S03", "S03-01-001", "hapiness", 1, 2, 3, "12", 3, keep=False)
    rows.append((3, "S03-01-009", 1, 2, 4, "12", "happiness", None))  # no folder
    rows.append((None, None, 1, 2, 3, "12", "happiness", None))       # bad row
    clip(2, "S02", "S02-01-001", "happiness", 1, 2, 4, "12", 4, keep=False)
    cf.truncate(os.path.join(micro, *(("S02",) if subject_level else ()),
                             "happiness", "S02-01-001", "3.jpg"))
    skips = {"unknown emotion": 1, "missing folder": 1,
             "bad annotation row": 1, "unreadable image": 1}
  sheet = os.path.join(outer, "MMEW_Micro_Exp.xlsx")
  cf.write_xlsx(sheet, {"Sheet1": rows})
  if two_versions:
    shutil.copy(sheet, os.path.join(outer, "MMEW_Micro_Exp_v2.xlsx"))
  micro_exp = cf.Expected(
      clips=clips, splits={"S01": 3, "S02": 2, "S03": 2}, skips=skips,
      notes={"apex missing -> middle": 1,
             "offset past last frame -> cut": 1,
             "offset missing -> last frame of the clip folder": 1})

  macro = os.path.join(base, "Macro_Expression")
  macro_clips = {}
  for n, (subj, emotion, name) in enumerate((
      ("S01", "happiness", "S01-01-001"), ("S01", "anger", "S01-07-001"),
      ("S02", "surprise", "S02-02-001"), ("S02", "happiness", "S02-01-001"),
      ("S02", "happiness", "S02-01-002")), start=11):
    cf.write_frame(os.path.join(macro, subj, emotion, f"{name}.jpg"), n)
    macro_clips[f"mmew/{subj}/{name}"] = cf.Clip(
        f"mmew/{subj}/{name}", [n], 0, emotion, {"macro": MMEW_6.index(emotion)})
  _thumbs(os.path.join(macro, "S01", "happiness"))
  macro_exp = cf.Expected(clips=macro_clips, splits={"S01": 2, "S02": 3},
                          skips={}, notes={})
  return micro_exp, macro_exp


OULU_6 = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
OULU_3 = {"anger": 0, "disgust": 0, "fear": 0, "sadness": 0, "happiness": 1,
          "surprise": 2}


def make_oulu_casia(root: str, defects: bool = False) -> cf.Expected:
  """Oulu-CASIA as unpacked (VL/Strong is what the plain configs read)."""
  orig = os.path.join(root, "OriginalImg", "OriginalImg")
  clips = {}

  def seq(camera, light, subj, emotion, t, keep=True):
    for n in range(t):
      cf.write_frame(os.path.join(orig, camera, light, subj, emotion,
                                  f"{n:03d}.jpeg"), n + 20)
    if keep and (camera, light) == ("VL", "Strong"):
      e = emotion.lower()
      clips[f"oulu_casia/{subj}/{emotion}"] = cf.Clip(
          f"oulu_casia/{subj}/{emotion}", [n + 20 for n in range(t)], t - 1, emotion,
          {"6class": OULU_6.index(e), "3class": OULU_3[e]})

  seq("VL", "Strong", "P001", "Anger", 6)
  seq("VL", "Strong", "P001", "Happiness", 12)   # 009 < 010 in order
  _thumbs(os.path.join(orig, "VL", "Strong", "P001", "Happiness"))
  seq("VL", "Strong", "P002", "Surprise", 5)
  seq("VL", "Strong", "P002", "Disgust", 4)
  seq("VL", "Strong", "P002", "Fear", 5)
  seq("VL", "Strong", "P003", "Sadness", 7)      # P003 has one emotion only
  _thumbs(os.path.join(orig, "VL", "Strong", "P003"))
  # Other cameras / lightings: not read by the VL/Strong configs.
  seq("VL", "Weak", "P001", "Anger", 3)
  seq("NI", "Strong", "P001", "Happiness", 4)
  skips = {}
  if defects:
    seq("VL", "Strong", "P002", "Neutral", 3, keep=False)   # unknown emotion
    os.makedirs(os.path.join(orig, "VL", "Strong", "P003", "Fear"))   # empty
    seq("VL", "Strong", "P001", "Surprise", 4, keep=False)
    cf.truncate(os.path.join(orig, "VL", "Strong", "P001", "Surprise", "002.jpeg"))
    skips = {"unknown emotion": 1, "empty folder": 1, "unreadable image": 1}
  return cf.Expected(clips=clips, splits={"P001": 2, "P002": 3, "P003": 1},
                     skips=skips, notes={})
