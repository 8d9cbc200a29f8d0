"""Tiny fake copies of the licensed MER corpora, made in code for tests.

Each `make_<corpus>(root)` writes the corpus' real folder layout and
annotation spreadsheet, INCLUDING its known defects, and returns what a
correct builder must produce (`Expected`).

Frames are small constant-colour images whose colour encodes the frame
NUMBER (`frame_colour(n)`), so a test can check which file landed at which
index after onset/offset mapping: R = n % 251, G = (3 n) % 251, B = 77.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import cv2
import numpy as np

FRAME_HW = 48


def frame_colour(n: int) -> tuple[int, int, int]:
  return (n % 251, (3 * n) % 251, 77)


def number_from_colour(rgb: np.ndarray) -> int:
  """Inverse of `frame_colour` for n < 251 (reads the mean colour, JPEG-tolerant)."""
  r = int(round(float(np.asarray(rgb)[..., 0].mean())))
  return r


def write_frame(path: str, n: int, hw: int = FRAME_HW, grey: bool = False) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  img = np.zeros((hw, hw, 3), np.uint8)
  img[:] = frame_colour(n)
  if grey:   # SAMM ships single-channel JPEGs; colour = the R channel.
    img = np.repeat(img[..., :1], 3, -1)
    ok = cv2.imwrite(path, img[..., 0])
  else:
    ok = cv2.imwrite(path, img[..., ::-1])
  assert ok, path


def truncate(path: str) -> None:
  """Cuts a frame file in half (a truncated copy / interrupted unpacking)."""
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:len(data) // 2])


def write_xlsx(path: str, sheets: dict[str, Sequence[Sequence[Any]]]) -> None:
  import openpyxl  # pylint: disable=g-import-not-at-top
  wb = openpyxl.Workbook()
  wb.remove(wb.active)
  for name, rows in sheets.items():
    ws = wb.create_sheet(name)
    for row in rows:
      ws.append(list(row))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  wb.save(path)


@dataclasses.dataclass
class Clip:
  """What the builder must write for one clip."""
  sample_id: str
  numbers: list[int]       # frame numbers, in order, of the written frames
  apex: int                # index into frames
  emotion: str
  labels: dict[str, int]   # protocol -> label; a protocol absent: not written (excluded)
  action_units: str = ""
  apex_annotated: bool = True   # False: apex is the builder's middle stand-in


@dataclasses.dataclass
class Expected:
  """A fixture's expected build; `protocols` overrides fields per protocol."""
  clips: dict[str, Clip]
  splits: dict[str, int]         # split name -> number of clips
  skips: dict[str, int]          # SkipLog reason -> count (defects)
  notes: dict[str, int]          # SkipLog note -> count (repairs)
  excluded: dict[str, int] = dataclasses.field(default_factory=dict)
  protocols: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

  def for_protocol(self, protocol: str) -> "Expected":
    """The expectation of one protocol's build (clips it writes, its counts)."""
    over = self.protocols.get(protocol, {})
    clips = {k: c for k, c in self.clips.items() if protocol in c.labels}
    return Expected(clips=clips, splits=over.get("splits", self.splits),
                    skips=over.get("skips", self.skips),
                    notes=over.get("notes", self.notes),
                    excluded=over.get("excluded", self.excluded))

  def per_class(self, protocol: str, names: Sequence[str]) -> dict[str, int]:
    """`build_report.json`'s `per_class` of a build of `protocol` (`-1`: outside)."""
    out = {n: 0 for n in list(names) + ["-1"]}
    for clip in self.clips.values():
      lab = clip.labels[protocol]
      out[names[lab] if lab >= 0 else "-1"] += 1
    return out


def build(name: str, manual: Any, data_dir: Any, **kwargs):
  """Builds `name` (a registered `<builder>/<config>`, or a builder and a
  `config=` keyword) from the corpus in `manual` (array_record, as users do)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  b = tfds.builder(name, data_dir=str(data_dir), file_format="array_record",
                   **kwargs)
  b.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return b


def read_all(b) -> dict[str, dict[str, Any]]:
  """sample_id -> record (plus its `split`) of every split of a built builder."""
  out = {}
  for split in b.info.splits:
    for ex in b.as_data_source(split=split):
      out[ex["sample_id"].decode()] = dict(ex, split=split)
  return out


# Reasons as the builders name them (tfds_builders.skiplog / the builders).
OFFSET_CUT = "offset past last frame -> cut"
APEX_MISSING = "apex missing -> middle"
ERRATUM = "erratum applied"
NOT_IN_LIST = "not in the official list"
OUTSIDE = "emotion outside the protocol"


# ----------------------------------------------------------------------------


def make_casme2(root: str, cropped: bool = False) -> Expected:
  """CASME2-coding-20140508.xlsx + CASME2_RAW_selected/CASME2_RAW_selected/subNN/EPxx/imgN.jpg.

  As unpacked: the frame folder nests in its namesake. The sheet has the
  release's two blank unnamed columns (after Filename and after
  OffsetFrame). Real clip names from the MEGC 2019 list where a clip is in
  it. Defects: Subject as int, as text '1' and as '02'; frame numbers as
  text / float; ApexFrame '/' (-> middle); file name case (IMG5.JPG);
  natural order across digit counts (img99 < img100); a missing onset file
  (skip) and a missing clip folder (skip). Errata by rule: `sub16/EP01_08`'s
  offset lies past its last file (cut, reported); `sub04/EP12_01f` has
  apex '/' and is not in the MEGC 2019 list. Emotions outside a protocol:
  fear, sadness (5-class: label -1; 3-class MEGC: excluded), others.
  Defects that must be counted skips (and errors under strict): onset >
  offset, an unknown emotion string ('hapiness'), an empty clip folder, a
  truncated JPEG inside a clip.
  """
  top = "Cropped" if cropped else "CASME2_RAW_selected"
  frames_dir = os.path.join(root, top, top)
  prefix = "reg_img" if cropped else "img"
  rows = [("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame",
           None, "Action Units", "Estimated Emotion")]
  clips = {}

  def clip(subject_cell, subj, name, on, ap, off, emotion, labels, au,
           disk=None, name_fmt=None, cells=None):
    on_c, ap_c, off_c = cells or (on, ap, off)
    rows.append((subject_cell, name, None, on_c, ap_c, off_c, None, au, emotion))
    disk = list(disk if disk is not None else range(on - 2, off + 3))
    for n in disk:
      fname = (name_fmt or prefix + "{}.jpg").format(n)
      write_frame(os.path.join(frames_dir, subj, name, fname), n)
    if labels is not None:
      nums = list(range(on, min(off, max(disk)) + 1))
      apex = nums.index(ap) if isinstance(ap, int) else (len(nums) - 1) // 2
      clips[f"casme2/{subj}/{name}"] = Clip(f"casme2/{subj}/{name}", nums, apex,
                                            emotion, labels, au,
                                            apex_annotated=isinstance(ap, int))

  clip(1, "sub01", "EP02_01f", 46, 49, 52, "happiness",
       {"5class": 0, "3class": 1}, "12")
  clip("1", "sub01", "EP03_02", 10, "/", 14, "fear",
       {"5class": -1}, "4+7", cells=("10", "/", 14.0))
  clip(2, "sub02", "EP11_01", 5, 7, 9, "surprise",
       {"5class": 3, "3class": 2}, "1+2", name_fmt="IMG{}.JPG")
  clip("02", "sub02", "EP06_01f", 100, 101, 104, "repression",
       {"5class": 2, "3class": 0}, "R15", disk=range(97, 106))
  clip(3, "sub03", "EP05_02", 20, 22, 24, "others",
       {"5class": 4}, "L12", cells=(20.0, "22", "24"))
  # Onset file missing on disk -> skipped ("missing frames").
  clip(4, "sub04", "EP12_01", 1, 3, 5, "disgust", None, "4",
       disk=range(2, 8))
  # Folder missing -> skipped ("missing folder").
  rows.append((5, "EP19_03", None, 1, 2, 3, None, "", "disgust"))
  # onset > offset -> skipped, though the frames are on disk.
  clip(3, "sub03", "EP07_01", 30, 28, 25, "surprise", None, "1", disk=range(20, 35))
  # A typo in the emotion -> skipped ("unknown emotion"), not labelled -1.
  clip(3, "sub03", "EP08_01", 5, 6, 7, "hapiness", None, "12")
  # An empty clip folder (subject sub06 then has no clip: no split).
  os.makedirs(os.path.join(frames_dir, "sub06", "EP01_01"))
  rows.append((6, "EP01_01", None, 1, 2, 3, None, "", "disgust"))
  # A truncated frame inside onset..offset -> skipped ("unreadable image");
  # not in the MEGC 2019 list, so the 3-class build excludes it first.
  clip(2, "sub02", "EP10_01", 60, 61, 63, "disgust", None, "4")
  truncate(os.path.join(frames_dir, "sub02", "EP10_01", prefix + "62.jpg"))
  # The release's own faults: apex '/' (and not in the MEGC 2019 list) ...
  clip(4, "sub04", "EP12_01f", 20, "/", 24, "disgust", {"5class": 1}, "4")
  # ... and an offset past the last frame on disk (cut to the frames that exist).
  clip(16, "sub16", "EP01_08", 30, 33, 40, "disgust",
       {"5class": 1, "3class": 0}, "4+7", disk=range(28, 37))
  clip(5, "sub05", "EP08_03", 8, 9, 11, "sadness", {"5class": -1}, "1+4")
  write_xlsx(os.path.join(root, "CASME2-coding-20140508.xlsx"), {"Sheet1": rows})
  defects = {"missing frames": 1, "missing folder": 1, "onset > offset": 1,
             "unknown emotion": 1, "empty folder": 1}
  return Expected(
      clips=clips,
      splits={"sub01": 2, "sub02": 2, "sub03": 1, "sub04": 1, "sub05": 1, "sub16": 1},
      skips={**defects, "unreadable image": 1},
      notes={APEX_MISSING: 2, OFFSET_CUT: 1},
      protocols={"3class": dict(
          splits={"sub01": 1, "sub02": 2, "sub16": 1}, skips=defects,
          notes={OFFSET_CUT: 1},
          excluded={OUTSIDE: 3, NOT_IN_LIST: 2})})


def make_samm(root: str) -> Expected:
  """SAMM_Micro_FACS_Codes_v2.xlsx (13 notes rows, then the table) + SAMM/006/006_1_2/006_05562.jpg.

  As unpacked: everything one folder down (`SAMM_release/`). Defects: the
  header below 13 notes rows (as the release: data from row 15); Subject
  '006' text and 7 int; absolute frame numbers with zero padding; Apex -1
  and blank (-> middle); 'Other' and 'Others' spellings (5-class 'other';
  not in the MEGC 2019 composite: excluded); greyscale JPEGs; an offset past
  the last file (cut); a frame missing inside a clip (skip); a frame that
  is not an image at all (skip; its subject 012 then has no split).
  """
  base = os.path.join(root, "SAMM_release")
  notes = [("SAMM Micro-Movement Dataset - FACS codes",)] + [
      (f"note line {i}", None, "coder remarks") for i in range(11)] + [()]
  header = ("Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
            "Offset Frame", "Duration", "Type", "Action Units", "Estimated Emotion",
            "Notes")
  rows = list(notes) + [header]
  clips = {}

  def clip(subject_cell, subj, name, on, ap, off, emotion, labels, au,
           disk=None):
    rows.append((subject_cell, name, 1, on, ap, off, off - on + 1, "Micro - 1/2",
                 au, emotion, None))
    disk = list(disk if disk is not None else range(on - 3, off + 4))
    for n in disk:
      write_frame(os.path.join(base, "SAMM", subj, name, f"{subj}_{n:05d}.jpg"),
                  n, grey=True)
    if labels is not None:
      nums = list(range(on, min(off, max(disk)) + 1))
      known = isinstance(ap, int) and ap >= 0
      apex = nums.index(ap) if known else (len(nums) - 1) // 2
      clips[f"samm/{subj}/{name}"] = Clip(f"samm/{subj}/{name}", nums, apex,
                                          emotion, labels, au,
                                          apex_annotated=known)

  clip("006", "006", "006_1_2", 5562, 5565, 5567, "Anger",
       {"5class": 0, "3class": 0}, "4+7")
  clip("006", "006", "006_1_5", 100, -1, 104, "Contempt",
       {"5class": 1, "3class": 0}, "R14")
  clip(7, "007", "007_6_1", 2048, None, 2050, "Happiness",
       {"5class": 2, "3class": 1}, "R12")
  clip(7, "007", "007_6_4", 300, 301, 303, "Other", {"5class": 4}, "43")
  clip(7, "007", "007_3_1", 9, 10, 11, "Sadness",
       {"5class": -1, "3class": 0}, "1+4+15")
  clip(8, "008", "008_1_1", 50, 51, 52, "Others", {"5class": 4}, "4")
  # Offset 205 lies past the last file (203): cut.
  clip(11, "011", "011_2_3", 200, 202, 205, "Disgust",
       {"5class": -1, "3class": 0}, "9", disk=range(195, 204))
  # A frame missing inside onset..offset: skipped.
  clip(11, "011", "011_2_1", 300, 302, 305, "Anger", None, "4",
       disk=[n for n in range(297, 309) if n != 303])
  clip(12, "012", "012_3_1", 40, 41, 42, "Disgust", None, "9")
  with open(os.path.join(base, "SAMM", "012", "012_3_1", "012_00041.jpg"), "wb") as f:
    f.write(b"not a jpeg")
  write_xlsx(os.path.join(base, "SAMM_Micro_FACS_Codes_v2.xlsx"), {"FACS": rows})
  return Expected(
      clips=clips, splits={"s006": 2, "s007": 3, "s008": 1, "s011": 1},
      skips={"missing frames": 1, "unreadable image": 1},
      notes={APEX_MISSING: 2, OFFSET_CUT: 1},
      protocols={"3class": dict(splits={"s006": 2, "s007": 2, "s011": 1},
                                excluded={OUTSIDE: 2})})


def make_smic(root: str, cameras: Sequence[str] = ("HS", "VIS")) -> Expected:
  """SMIC_all_raw/SMIC_all_raw/<HS|VIS|NIR>/s1/micro/<emotion>/s1_ne_01/image000001.bmp.

  As unpacked (the folder nests in its namesake); no spreadsheet. Also a
  non_micro folder (an exclusion), an empty clip folder (a defect), a clip
  the MEGC 2019 list does not name (s2_ne_01: excluded from HS `3class`,
  written for VIS) and frame numbers that cross a digit count (image9 ..
  image12 sort numerically). Expected is for HS.
  """
  clips = {}
  spec = [("s1", "negative", "s1_ne_01", range(1, 6)),
          ("s1", "surprise", "s1_sur_01", range(8, 13)),
          ("s2", "positive", "s2_po_01", range(40, 44)),
          ("s3", "negative", "s3_ne_02", range(1, 4)),
          ("s2", "negative", "s2_ne_01", range(1, 4))]   # not in the MEGC list
  base = os.path.join(root, "SMIC_all_raw", "SMIC_all_raw")
  for cam in cameras:
    for subj, emo, name, nums in spec:
      for n in nums:
        write_frame(os.path.join(base, cam, subj, "micro", emo,
                                 name, f"image{n:06d}.bmp" if n < 10 else f"image{n}.bmp"), n)
    write_frame(os.path.join(base, cam, "s1", "non_micro",
                             "s1_nm_01", "image000001.bmp"), 1)
    os.makedirs(os.path.join(base, cam, "s2", "micro", "negative",
                             "s2_ne_09"), exist_ok=True)
  for subj, emo, name, nums in spec[:4]:
    nums = list(nums)
    clips[f"smic/{subj}/{name}"] = Clip(
        f"smic/{subj}/{name}", nums, (len(nums) - 1) // 2, emo,
        {"3class": ("negative", "positive", "surprise").index(emo)},
        apex_annotated=False)   # SMIC has no apex: always the stand-in
  return Expected(clips=clips, splits={"s1": 2, "s2": 1, "s3": 1},
                  skips={"empty folder": 1},
                  notes={"apex = middle (SMIC has no apex)": 4},
                  excluded={"non_micro folder (not a micro-expression)": 1,
                            NOT_IN_LIST: 1})


def make_casme_sq(root: str) -> Expected:
  """CAS(ME)^2code_final.xlsx (3 sheets, no header) + rawpic/rawpic/s15/15_0101disgustingteeth/img001.jpg.

  The release's names: code-sheet clips '<video>_<n>' ('disgust1_1',
  'happy1_2'), sheet 'naming rule1' (folder number, 's15', participant)
  and 'naming rule2' (code '0101', video 'disgust1'); folders
  '<NN>_<code><title>' with the release's own typos ('0503unnyfarting');
  frames unpacked as rawpic/rawpic/. Macro rows are excluded; offset 0 ->
  2*apex - onset; a blank apex cell (-> middle, apex_annotated False); an
  offset past the last frame (cut); one missing folder. s16's clips are
  all 'others' (3-class -1), so the 3-class build has one labelled subject.
  """
  codes = [
      (1, "disgust1_1", 10, 12, 15, "4+9", "negative", "micro-expression", "disgust"),
      (1, "disgust1_2", 30, 35, 60, "4", "negative", "macro-expression", "disgust"),
      (1, "happy2_1", 7, 9, 0, "12", "positive", "micro-expression", "happy"),
      (2, "happy2_1", 3, 4, 6, "12", "others", "micro-expression", "happy"),
      (2, "happy2_2", 10, None, 14, "12", "others", "micro-expression", "happy"),
      (2, "anger2_3", 3, 4, 6, "4", "negative", "micro-expression", "anger"),
      (2, "disgust1_4", 15, 16, 25, "4", "others", "micro-expression", "disgust"),
  ]
  rule1 = [(15, "s15", 1), (16, "s16", 2)]
  rule2 = [("0101", "disgust1"), ("0503", "happy2"), ("0402", "anger2")]
  write_xlsx(os.path.join(root, "CAS(ME)^2code_final.xlsx"),
             {"CASFEcode_final": codes, "naming rule1": rule1, "naming rule2": rule2})
  raw = os.path.join(root, "rawpic", "rawpic")
  for n in range(1, 70):
    write_frame(os.path.join(raw, "s15", "15_0101disgustingteeth", f"img{n:03d}.jpg"), n)
  for n in range(1, 20):
    write_frame(os.path.join(raw, "s15", "15_0503unnyfarting", f"img{n:03d}.jpg"), n)
    write_frame(os.path.join(raw, "s16", "16_0503unnyfarting", f"img{n:03d}.jpg"), n)
    write_frame(os.path.join(raw, "s16", "16_0101disgustingteeth", f"img{n:03d}.jpg"), n)
  clips = {
      "casme_sq/s15/disgust1_1": Clip(
          "casme_sq/s15/disgust1_1", list(range(10, 16)), 2, "negative",
          {"3class": 0, "4class": 0}, "4+9"),
      "casme_sq/s15/happy2_1": Clip(
          "casme_sq/s15/happy2_1", list(range(7, 12)), 2, "positive",
          {"3class": 1, "4class": 1}, "12"),
      "casme_sq/s16/happy2_1": Clip(
          "casme_sq/s16/happy2_1", list(range(3, 7)), 1, "others",
          {"3class": -1, "4class": 3}, "12"),
      "casme_sq/s16/happy2_2": Clip(
          "casme_sq/s16/happy2_2", list(range(10, 15)), 2, "others",
          {"3class": -1, "4class": 3}, "12", apex_annotated=False),
      "casme_sq/s16/disgust1_4": Clip(
          "casme_sq/s16/disgust1_4", list(range(15, 20)), 1, "others",
          {"3class": -1, "4class": 3}, "4"),
  }
  return Expected(clips=clips, splits={"s15": 2, "s16": 3},
                  skips={"missing folder": 1},
                  notes={"offset missing -> 2*apex-onset": 1,
                         APEX_MISSING: 1, OFFSET_CUT: 1},
                  excluded={"macro-expression (not micro)": 1})


def make_casme3(root: str) -> Expected:
  """part_A/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx + part_A/spNO.1/a/color/<index>.jpg.

  As released: the sheet in part_A/annotation/, EVERY cell text ('116'),
  emotions 'Others' besides 'others', a Filename 'J' (folder 'j'), and the
  v2 rows the authors / tvaranka/meb correct: spNO.214/c offset 3460 (-> 34),
  spNO.216/d onset 3647 > offset (-> 2647),
  spNO.216/e onset and apex 0 without a 0.jpg (-> 1), spNO.40/e offset 0
  (-> 1845). Two MEs in one Filename; folder case differs from the sheet
  (spNo vs spNO, 'B' vs 'b'); a dropped frame inside a clip (tolerated,
  noted); a clip that lost its first 3 frames but keeps >= 8 (kept, noted);
  a subject folder absent (skip).
  """
  header = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU",
            "Objective class", "emotion")
  rows = [header,
          ("spNO.1", "a", "116", "119", "121", "4+7", "I", "disgust"),
          ("spNO.1", "a", "200", "203", "206", "12", "II", "happy"),
          ("spNO.2", "b", "5", "", "9", "1+2", "III", "surprise"),
          ("spNO.2", "c", "30", "31", "33", "4", "IV", "Others"),
          ("spNO.3", "d", "1", "2", "3", "4", "IV", "fear"),   # subject folder absent
          ("spNO.14", "J", "1012", "1019", "1038", "14", "VII", "others"),
          ("spNO.214", "c", "5", "5", "3460", "17+4", "VII", "disgust"),
          ("spNO.216", "d", "3647", "2668", "2694", "38", "VII", "others"),
          ("spNO.216", "e", "0", "0", "25", "14", "VII", "others"),
          ("spNO.40", "e", "1812", "1824", "0", "18", "VII", "others"),
          ("spNO.5", "a", "10", "15", "22", "4", "I", "sad")]   # 10..12 dropped
  ann = os.path.join(root, "part_A", "annotation")
  write_xlsx(os.path.join(ann, "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"),
             {"label": rows, "Sheet1": [], "Sheet3": []})
  base = os.path.join(root, "part_A")
  def frames(subj, name, nums):
    for n in nums:
      write_frame(os.path.join(base, subj, name, "color", f"{n}.jpg"), n)
  frames("spNo.1", "a", list(range(110, 125)) + list(range(198, 210)))
  frames("spNo.2", "B", range(1, 12))
  frames("spNo.2", "c", [n for n in range(28, 36) if n != 32])   # dropped frame
  frames("spNO.14", "j", range(1010, 1040))
  frames("spNO.214", "c", range(1, 40))
  frames("spNO.216", "e", range(1, 30))     # no 0.jpg
  frames("spNO.216", "d", range(2640, 2700))
  frames("spNO.40", "e", range(1810, 1850))
  frames("spNO.5", "a", range(13, 24))      # lost 10, 11, 12
  l7 = ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")
  def c(sid, nums, apex, emo, au, annotated=True):
    e = emo.lower()
    l4 = {"disgust": 0, "happy": 1, "surprise": 2, "others": 3, "sad": 0}[e]
    labels = {"7class": l7.index(e), "4class": l4, "3class": -1 if l4 == 3 else l4}
    return sid, Clip(sid, list(nums), apex, emo, labels, au, apex_annotated=annotated)
  clips = dict([
      c("casme3/spNO.1/a_116", range(116, 122), 3, "disgust", "4+7"),
      c("casme3/spNO.1/a_200", range(200, 207), 3, "happy", "12"),
      c("casme3/spNO.2/b_5", range(5, 10), 2, "surprise", "1+2", annotated=False),
      c("casme3/spNO.2/c_30", [30, 31, 33], 1, "Others", "4"),
      c("casme3/spNO.14/J_1012", range(1012, 1039), 7, "others", "14"),
      c("casme3/spNO.214/c_5", range(5, 35), 0, "disgust", "17+4"),
      c("casme3/spNO.216/d_2647", range(2647, 2695), 21, "others", "38"),
      c("casme3/spNO.216/e_1", range(1, 26), 0, "others", "14"),
      c("casme3/spNO.40/e_1812", range(1812, 1846), 12, "others", "18"),
      c("casme3/spNO.5/a_10", range(13, 23), 2, "sad", "4"),
  ])
  return Expected(
      clips=clips,
      splits={"spNO_1": 2, "spNO_2": 2, "spNO_14": 1, "spNO_214": 1,
              "spNO_216": 2, "spNO_40": 1, "spNO_5": 1},
      skips={"missing folder": 1},
      notes={ERRATUM: 5, APEX_MISSING: 1, "dropped frames tolerated": 1,
             "frames missing at clip start -> kept the rest": 1})


def make_ck_plus(root: str) -> Expected:
  """extended-cohn-kanade-images/cohn-kanade-images/S005/001/*.png + Emotion_labels/Emotion/ + FACS_labels/FACS/.

  As unpacked (each folder nests in the archive's own). Unlabelled
  sequences are EXCLUSIONS (266 of 593 in the release), a stray .DS_Store,
  float-formatted codes.
  """
  images = os.path.join(root, "extended-cohn-kanade-images", "cohn-kanade-images")
  emotion_dir = os.path.join(root, "Emotion_labels", "Emotion")
  facs_dir = os.path.join(root, "FACS_labels", "FACS")
  spec = [("S005", "001", 4, 3, "   9.0000000e+00   0.0000000e+00\n   1.7000000e+01   3.0000000e+00\n"),
          ("S005", "002", 3, None, None),
          ("S010", "004", 5, 2, None),
          ("S011", "001", 3, 5, "   1.2000000e+01   0.0000000e+00\n")]
  clips = {}
  names = {2: "contempt", 3: "disgust", 5: "happy"}
  for subj, seq, t, code, facs in spec:
    for n in range(1, t + 1):
      write_frame(os.path.join(images, subj, seq, f"{subj}_{seq}_{n:08d}.png"), n)
    with open(os.path.join(images, subj, seq, ".DS_Store"), "w") as f:
      f.write("x")
    if code is None:
      continue
    d = os.path.join(emotion_dir, subj, seq)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{subj}_{seq}_{t:08d}_emotion.txt"), "w") as f:
      f.write(f"   {code:.7e}\n")
    if facs:
      d = os.path.join(facs_dir, subj, seq)
      os.makedirs(d, exist_ok=True)
      with open(os.path.join(d, f"{subj}_{seq}_{t:08d}_facs.txt"), "w") as f:
        f.write(facs)
    emo = names[code]
    seven = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    six = ("anger", "disgust", "fear", "happy", "sadness", "surprise")
    clips[f"ck_plus/{subj}/{seq}"] = Clip(
        f"ck_plus/{subj}/{seq}", list(range(1, t + 1)), t - 1, emo,
        {"7class": seven.index(emo), "6class": six.index(emo) if emo in six else -1,
         "3class": {"contempt": 0, "disgust": 0, "happy": 1}[emo]},
        {"S005": "9+17C", "S011": "12"}.get(subj, ""))
  return Expected(clips=clips, splits={"S005": 1, "S010": 1, "S011": 1},
                  skips={}, notes={}, excluded={"no emotion label": 1})


# ----------------------------------------------------------------------------
# The MEGC 2019 composite corpora at their real size and emotion distribution.

# Each corpus' emotion counts as released (CASME II 20140508: 255 clips; SAMM
# v2: 159; SMIC-HS: 164), and how many of each the MEGC 2019 list keeps.
CASME2_EMOTIONS = {"happiness": 32, "surprise": 25, "disgust": 63,
                   "repression": 27, "fear": 2, "sadness": 7, "others": 99}
SAMM_EMOTIONS = {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8,
                 "Sadness": 6, "Happiness": 26, "Surprise": 15, "Other": 26}


def _megc_list(dataset: str) -> list[tuple[str, str, str]]:
  from tfds_builders import labels  # pylint: disable=g-import-not-at-top
  return [(r["subject"], r["clip"], r["label"])
          for r in labels.read_list(labels.MEGC2019_LIST) if r["dataset"] == dataset]


def _tiny_clip(folder: str, names: Sequence[str]) -> None:
  """A few 8x8 frames (the count test plans and checks, it never encodes)."""
  os.makedirs(folder, exist_ok=True)
  for n, name in names:
    write_frame(os.path.join(folder, name.format(n)), n, hw=8)


def make_megc2019(root: str) -> dict[str, str]:
  """casme2/, samm/, smic/ manual_dirs with each corpus' full emotion distribution.

  Listed clips carry the MEGC 2019 list's names; each corpus' negative
  emotions are spread as released (CASME II: disgust + repression; SAMM:
  anger, contempt, disgust, fear, sadness). Outside the list: CASME II's
  fear / sadness / others rows (subjects sub10, sub18 have only those) and
  `sub04/EP12_01f` (disgust, apex '/') and `sub24/EP02_07` (disgust), which
  the mapping keeps but the list does not; SAMM's 26 'Other' clips
  (subjects 008, 025, 027, 029 have only those); SMIC's non_micro folders.
  The release faults handled without a defect: CASME II `sub16/EP01_08`'s
  offset past its last frame; SAMM's three missing apexes in spreadsheet
  rows 140, 147, 148 (errata). Returns dataset -> manual_dir.
  """
  out = {}
  # CASME II.
  m = os.path.join(root, "casme2")
  frames = os.path.join(m, "CASME2_RAW_selected")
  rows = [("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame",
           None, "Action Units", "Estimated Emotion")]
  neg = iter(["disgust"] * 61 + ["repression"] * 27)
  def casme2_row(subj, clip, emotion, apex=2, offset=3, disk=3):
    rows.append((int(subj[3:]), clip, None, 1, apex, offset, None, "4", emotion))
    _tiny_clip(os.path.join(frames, subj, clip),
               [(n, "img{}.jpg") for n in range(1, disk + 1)])
  for subj, clip, label in _megc_list("casme2"):
    emotion = {"positive": "happiness", "surprise": "surprise"}.get(label) or next(neg)
    if (subj, clip) == ("sub16", "EP01_08"):
      casme2_row(subj, clip, emotion, offset=9)   # offset past the last frame
    else:
      casme2_row(subj, clip, emotion)
  casme2_row("sub04", "EP12_01f", "disgust", apex="/")
  casme2_row("sub24", "EP02_07", "disgust")
  extra = ["fear"] * 2 + ["sadness"] * 7 + ["others"] * 99
  subjects = [f"sub{i:02d}" for i in range(1, 27)]
  for i, emotion in enumerate(extra):
    casme2_row(subjects[i % 26], f"EP{30 + i // 26:02d}_{i % 26 + 1:02d}", emotion)
  write_xlsx(os.path.join(m, "CASME2-coding-20140508.xlsx"), {"Sheet1": rows})
  out["casme2"] = m
  # SAMM: 13 notes rows, the header in row 14, data from row 15.
  m = os.path.join(root, "samm")
  notes = [("SAMM Micro-Movement Dataset - FACS codes",)] + [
      (f"note line {i}",) for i in range(12)]
  rows = list(notes) + [("Subject", "Filename", "Inducement Code", "Onset Frame",
                         "Apex Frame", "Offset Frame", "Duration", "Type",
                         "Action Units", "Estimated Emotion", "Notes")]
  neg = iter(["Anger"] * 57 + ["Contempt"] * 12 + ["Disgust"] * 9 + ["Fear"] * 8
             + ["Sadness"] * 6)
  errata_apex = {140: 1105, 147: 4945, 148: 5130}   # spreadsheet row -> apex
  def samm_row(subj, clip, emotion):
    row = len(rows) + 1
    on, ap = (errata_apex[row] - 1, None) if row in errata_apex else (10, 11)
    rows.append((subj, clip, 1, on, ap, on + 2, 3, "Micro - 1/2", "4", emotion, None))
    _tiny_clip(os.path.join(m, "SAMM", subj, clip),
               [(n, f"{subj}_{{:05d}}.jpg") for n in range(on, on + 3)])
  for subj, clip, label in _megc_list("samm"):
    samm_row(subj, clip, {"positive": "Happiness", "surprise": "Surprise"}.get(label)
             or next(neg))
  other_subjects = ["008", "025", "027", "029", "006", "011"]
  for i in range(26):
    subj = other_subjects[i % 6]
    samm_row(subj, f"{subj}_9_{i + 1}", "Other")
  write_xlsx(os.path.join(m, "SAMM_Micro_FACS_Codes_v2.xlsx"), {"FACS": rows})
  out["samm"] = m
  # SMIC-HS: labels from folder names; a non_micro folder for some subjects.
  m = os.path.join(root, "smic")
  hs = os.path.join(m, "SMIC_all_raw", "HS")
  for subj, clip, label in _megc_list("smic"):
    _tiny_clip(os.path.join(hs, subj, "micro", label, clip),
               [(n, "image{:06d}.bmp") for n in (1, 2, 3)])
  for subj in ("s1", "s2", "s3"):
    _tiny_clip(os.path.join(hs, subj, "non_micro", f"{subj}_n1"),
               [(1, "image{:06d}.bmp")])
  out["smic"] = m
  return out
