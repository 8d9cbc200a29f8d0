"""What every licensed-corpus builder shares.

* `ManualDirError`: the one exception a builder raises when `manual_dir` is
  missing or laid out wrongly; its message names the corpus, where to request
  it and the exact layout expected.
* `read_xlsx_rows`: annotation spreadsheets via openpyxl (no pandas). NOTE:
  openpyxl (>=3.1,<4) must be listed in pyproject.toml.
* `list_frames` / `frame_number`: frame files in natural order, tolerant of
  zero padding, case and a prefix (`img46.jpg`, `reg_img46.jpg`,
  `006_05562.jpg`, `image000001.bmp`, `IMG001.JPG`).
* `frames_between`: annotated onset/offset frame NUMBERS -> the clip's file
  list and INDICES into it.
* `SkipLog`: counted, logged skips with a one-line summary at the end of a
  build; nothing is dropped silently. With `strict=True` the first defect
  raises `CorpusDefectError` instead.
* `build_report.json`: written next to the records after every build (rows
  read, samples per class, every skipped / repaired / excluded row).
* `MEGC_3CLASS` and `protocol_label`: label mapping tables.
* `ClipPlan` / `CorpusConfig` / `CorpusBuilderMixin`: the plan -> examples
  machinery each builder plugs its own annotation reader into.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import records

log = logging.getLogger("tfds_builders")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class ManualDirError(ValueError):
  """`manual_dir` is missing or does not hold the corpus in the expected layout."""


class CorpusDefectError(ValueError):
  """A strict build met a defect (bad row, missing/unreadable frame, ...)."""


# The record format version of the licensed-corpus builders (they write
# records through this module, so they change together).
VERSION = tfds.core.Version("1.2.0")
RELEASE_NOTES = {
    "1.0.0": "First release.",
    "1.1.0": ("Records carry `apex_annotated` (False where the apex was "
              "filled in as the middle frame). Rebuild: 1.0.0 builds are not "
              "read by this version."),
    "1.2.0": ("Real releases as unpacked: errata tables applied (listed under "
              "`repaired`), offsets past the last frame cut, nested unpack "
              "folders found, the annotation file and its sha256 recorded; "
              "MEGC 2019 `3class` configs of smic / casme2 / samm follow the "
              "official composite list (442 clips); CK+ unlabelled sequences, "
              "SMIC non_micro folders and clips outside a list are exclusions, "
              "not defects."),
}

REPORT_FILE = "build_report.json"
# Skip reasons shared by the builders (a builder may add its own).
BAD_ROW = "bad annotation row"
MISSING_FOLDER = "missing folder"
EMPTY_FOLDER = "empty folder"
MISSING_FRAMES = "missing frames"
ONSET_AFTER_OFFSET = "onset > offset"
UNKNOWN_EMOTION = "unknown emotion"
UNREADABLE_IMAGE = "unreadable image"
# Repairs (SkipLog notes) after which a written clip's apex is a stand-in,
# recorded as `apex_annotated = False`.
APEX_MISSING = "apex missing -> middle"
# Repairs: a published erratum applied; an offset past the last frame on
# disk cut to the last frame; frames missing at a clip's start left out.
ERRATUM = "erratum applied"
OFFSET_CUT = "offset past last frame -> cut"
# Exclusions shared by the builders (never defects).
NOT_IN_LIST = "not in the official list"
OUTSIDE_PROTOCOL = "emotion outside the protocol"


def manual_dir_error(corpus: str, problem: str, instructions: str) -> ManualDirError:
  """A `ManualDirError` naming the corpus, the problem and the expected layout."""
  return ManualDirError(
      f"{corpus}: {problem}\n\n{instructions.strip()}\n\nPass the folder with "
      "download_config=tfds.download.DownloadConfig(manual_dir=...).")


def require_manual_dir(manual_dir: Any, corpus: str, instructions: str) -> str:
  """Returns `manual_dir` as a str, or raises `ManualDirError` if it is unusable."""
  if manual_dir is None or not str(manual_dir):
    raise manual_dir_error(corpus, "no manual_dir was given.", instructions)
  path = os.fspath(manual_dir)
  if not os.path.isdir(path):
    raise manual_dir_error(corpus, f"manual_dir {path!r} does not exist.",
                           instructions)
  return path


def find_child(parent: str, *names: str, kind: str = "any") -> str | None:
  """First entry of `parent` matching one of `names` case-insensitively, or None.

  Releases differ in capitalisation (`CASME2_RAW_selected` vs
  `CASME2_RAW_Selected`, `spNO.1` vs `spNo.1`), so folders and files are
  matched ignoring case; an exact match wins.
  """
  if not os.path.isdir(parent):
    return None
  entries = os.listdir(parent)
  def ok(p):
    if kind == "dir":
      return os.path.isdir(p)
    if kind == "file":
      return os.path.isfile(p)
    return True
  for name in names:
    p = os.path.join(parent, name)
    if name in entries and ok(p):
      return p
  lower = {e.lower(): e for e in sorted(entries)}
  for name in names:
    e = lower.get(name.lower())
    if e is not None and ok(os.path.join(parent, e)):
      return os.path.join(parent, e)
  return None


def find_file_glob(parent: str, pattern: str) -> str | None:
  """First file in `parent` whose name matches regex `pattern` (case-insensitive)."""
  if not os.path.isdir(parent):
    return None
  rx = re.compile(pattern, re.IGNORECASE)
  for e in sorted(os.listdir(parent)):
    if rx.fullmatch(e) and os.path.isfile(os.path.join(parent, e)):
      return os.path.join(parent, e)
  return None


def find_nested(parent: str, *names: str, kind: str = "dir",
                inner: Sequence[str] = ()) -> str | None:
  """`find_child`, also one level further down, as releases are unpacked.

  Archives often unpack into a folder of their own name
  (`CASME2_RAW_selected/CASME2_RAW_selected`, `Cropped/Cropped`) or one
  with a longer name (`extended-cohn-kanade-images/cohn-kanade-images`,
  `Emotion_labels/Emotion`). Found `names[i]`: when it holds exactly the
  data one level down under one of `names` or `inner`, that inner folder is
  returned. Not found in `parent`: each sub-folder of `parent` is tried
  (`<manual_dir>/CASME2/CASME2_RAW_selected`).
  """
  found = find_child(parent, *names, kind=kind)
  if found is None and os.path.isdir(parent):
    for d in sorted(os.listdir(parent)):
      sub = os.path.join(parent, d)
      if os.path.isdir(sub) and not d.startswith("."):
        found = find_child(sub, *names, kind=kind)
        if found is not None:
          break
  if found is not None and os.path.isdir(found):
    deeper = find_child(found, *(tuple(inner) + tuple(names)), kind="dir")
    if deeper is not None:
      return deeper
  return found


def sha256_file(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def find_annotation(manual: str, pattern: str, corpus: str, instructions: str,
                    explicit: str | None = None,
                    subdirs: Sequence[str] = ()) -> str:
  """The one annotation file of a release; refuses to guess between versions.

  `explicit` (the builder's `annotation=` / `--annotation FILE`) wins: an
  absolute path, or a path relative to `manual`. Otherwise files whose name
  matches regex `pattern` are collected from `manual`, its `subdirs`
  (CAS(ME)^3: `part_A/annotation`) and one folder level below `manual`;
  two or more (`CASME2-coding-20140508.xlsx` and `-20190701.xlsx`) is a
  `ManualDirError` naming them, never a silent pick by sort order.
  """
  if explicit:
    path = explicit if os.path.isabs(explicit) else os.path.join(manual, explicit)
    if not os.path.isfile(path):
      raise manual_dir_error(
          corpus, f"annotation file {explicit!r} not found (looked at {path!r}).",
          instructions)
    return path
  rx = re.compile(pattern, re.IGNORECASE)
  folders = [manual]
  for sd in subdirs:
    p = manual
    for part in sd.split("/"):
      p = find_child(p, part, kind="dir") if p else None
    if p:
      folders.append(p)
  for d in sorted(os.listdir(manual)):
    sub = os.path.join(manual, d)
    if os.path.isdir(sub) and not d.startswith("."):
      folders.append(sub)
      for sd in subdirs:   # e.g. <unpacked>/part_A/annotation
        p = sub
        for part in sd.split("/"):
          p = find_child(p, part, kind="dir") if p else None
        if p:
          folders.append(p)
  found = []
  for folder in dict.fromkeys(folders):
    for e in sorted(os.listdir(folder)):
      p = os.path.join(folder, e)
      if rx.fullmatch(e) and os.path.isfile(p) and not e.startswith("~$"):
        found.append(p)
  if not found:
    raise manual_dir_error(
        corpus, f"annotation file (name matching {pattern!r}) not found in "
        f"{manual!r}, {', '.join(subdirs) + ' or ' if subdirs else ''}one "
        "folder below.", instructions)
  if len(found) > 1:
    rel = [os.path.relpath(p, manual) for p in found]
    raise manual_dir_error(
        corpus, f"{len(found)} annotation files: {rel}. Several versions side "
        "by side are not guessed between: pick one with annotation=FILE "
        "(scripts/build_dataset.py --annotation FILE).", instructions)
  return found[0]


# ----------------------------------------------------------------------------
# Errata: published corrections of a release's annotation.


@dataclasses.dataclass(frozen=True)
class Erratum:
  """One published correction: `sample`'s `field` goes from `released` to `corrected`.

  `sample` is the key a builder's `errata_key` gives a row (e.g.
  'spNO.214/c/5': subject/filename/released onset). `released` is the
  value as released (text, as `cell_str` reads it); the fix is applied only
  when the row still holds it ('' also matches a blank, '/' or -1 cell), so
  a corrected re-release is left alone. `source` names where the fix is
  published.
  """
  sample: str
  field: str
  released: str
  corrected: int | str
  source: str


MISSING_CELLS = ("", "/", "-", "-1", "none")


def apply_errata(table: Sequence[Erratum], key: str | Sequence[str], row: dict[str, Any],
                 fields: Mapping[str, str], skips: "SkipLog", where: str) -> None:
  """Applies `table`'s rows for `key` to `row` (in place), recording each one.

  `fields` maps an erratum's field name ('onset', 'apex', 'offset') to the
  row's column key. Each applied fix is a `repaired` entry of the report
  (reason `ERRATUM`) with sample, field, released, corrected and source.
  """
  keys = (key,) if isinstance(key, str) else tuple(key)
  for e in table:
    if e.sample not in keys:
      continue
    col = fields.get(e.field, e.field)
    have = cell_str(row.get(col)).lower()
    want = str(e.released).lower()
    if have == want or (want in MISSING_CELLS and have in MISSING_CELLS):
      row[col] = e.corrected
      skips.repair(where, e)


# ----------------------------------------------------------------------------
# Spreadsheets.


def _openpyxl():
  try:
    import openpyxl  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "Reading the corpus annotation spreadsheets needs openpyxl: "
        "pip install 'openpyxl>=3.1,<4'") from e
  return openpyxl


def sheet_names(path: str) -> list[str]:
  wb = _openpyxl().load_workbook(path, read_only=True, data_only=True)
  try:
    return list(wb.sheetnames)
  finally:
    wb.close()


def read_sheet(path: str, sheet: str | int = 0) -> list[tuple[Any, ...]]:
  """All rows of one sheet as tuples of cell values (formulas as cached values)."""
  wb = _openpyxl().load_workbook(path, read_only=True, data_only=True)
  try:
    if isinstance(sheet, int):
      ws = wb.worksheets[sheet]
    else:
      names = {n.lower(): n for n in wb.sheetnames}
      if sheet.lower() not in names:
        raise KeyError(f"{path}: no sheet {sheet!r}; sheets: {wb.sheetnames}")
      ws = wb[names[sheet.lower()]]
    return [tuple(r) for r in ws.iter_rows(values_only=True)]
  finally:
    wb.close()


def _norm_header(h: Any) -> str:
  return re.sub(r"[^a-z0-9]", "", str(h).lower()) if h is not None else ""


def read_xlsx_rows(path: str, required: Sequence[str], sheet: str | int = 0,
                   max_header_row: int = 40) -> list[dict[str, Any]]:
  """Rows of a table whose header row may sit below a notes block (SAMM).

  The header row is the first row holding every name in `required` (compared
  lower-case without spaces/punctuation, so 'Onset Frame' == 'OnsetFrame').
  Returns one dict per non-empty data row, keyed by the normalised header;
  `row['_row']` is the 1-based spreadsheet row, for messages.
  """
  rows = read_sheet(path, sheet)
  want = [_norm_header(r) for r in required]
  for i, row in enumerate(rows[:max_header_row]):
    header = [_norm_header(c) for c in row]
    if all(w in header for w in want):
      break
  else:
    raise ValueError(
        f"{path}: no header row with columns {list(required)} in the first "
        f"{max_header_row} rows.")
  out = []
  for j, row in enumerate(rows[i + 1:], start=i + 2):
    if all(c is None or str(c).strip() == "" for c in row):
      continue
    d = {"_row": j}
    for h, c in zip(header, row):
      if h and h not in d:
        d[h] = c
    out.append(d)
  return out


def cell_str(v: Any) -> str:
  """A cell as text; integral floats lose their '.0' (Excel stores 1 as 1.0)."""
  if v is None:
    return ""
  if isinstance(v, float) and v.is_integer():
    return str(int(v))
  return str(v).strip()


def cell_int(v: Any) -> int | None:
  """A frame number cell as int, or None when blank / '/' / '-' / negative / text.

  Handles ints, floats (46.0) and strings ('46', ' 46 ', '46.0').
  """
  if v is None or isinstance(v, bool):
    return None
  if isinstance(v, (int, np.integer)):
    n = int(v)
  elif isinstance(v, float):
    if not np.isfinite(v) or not v.is_integer():
      return None
    n = int(v)
  else:
    s = str(v).strip()
    if not re.fullmatch(r"[+-]?\d+(\.0*)?", s):
      return None
    n = int(float(s))
  return n if n >= 0 else None


# ----------------------------------------------------------------------------
# Frames.

_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
  """Sort key: digit runs compare as numbers, text case-insensitively."""
  parts = _NUM.split(name.lower())
  return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def frame_number(name: str) -> int | None:
  """The frame number in a file name: its LAST digit run (`006_05562.jpg` -> 5562)."""
  stem = os.path.splitext(os.path.basename(name))[0]
  nums = _NUM.findall(stem)
  return int(nums[-1]) if nums else None


def list_frames(folder: str) -> list[str]:
  """Image files of `folder` in natural order (numbers, not strings, compared).

  Sorting by the frame number first keeps `img9` before `img10` and
  `image000009` before `image000010`; ties fall back to the natural key.
  """
  if not os.path.isdir(folder):
    return []
  names = [n for n in os.listdir(folder)
           if n.lower().endswith(IMAGE_EXTS) and not n.startswith(".")]
  def key(n):
    k = frame_number(n)
    return (k if k is not None else -1, natural_key(n))
  return [os.path.join(folder, n) for n in sorted(names, key=key)]


class FrameRangeError(ValueError):
  """The annotated onset..offset frames are not all on disk.

  `reason` is the `SkipLog` reason: `EMPTY_FOLDER`, `ONSET_AFTER_OFFSET` or
  `MISSING_FRAMES`.
  """

  def __init__(self, message: str, reason: str = MISSING_FRAMES):
    super().__init__(message)
    self.reason = reason


def frames_between(files: Sequence[str], onset: int, offset: int,
                   max_missing: int = 0) -> list[str]:
  """The files numbered onset..offset inclusive (frame NUMBERS, from file names).

  Raises `FrameRangeError` when onset or offset is absent, or more than
  `max_missing` frames in between are (the corpora have dropped frames;
  a tolerant builder may accept a few).
  """
  if offset < onset:
    raise FrameRangeError(f"onset {onset} > offset {offset}", ONSET_AFTER_OFFSET)
  if not files:
    raise FrameRangeError("no image files in the clip folder", EMPTY_FOLDER)
  by_num: dict[int, str] = {}
  for f in files:
    n = frame_number(f)
    if n is not None:
      by_num.setdefault(n, f)
  for what, n in (("onset", onset), ("offset", offset)):
    if n not in by_num:
      lo, hi = (min(by_num), max(by_num)) if by_num else (None, None)
      raise FrameRangeError(
          f"{what} frame {n} not on disk (files number {lo}..{hi})")
  want = range(onset, offset + 1)
  missing = [n for n in want if n not in by_num]
  if len(missing) > max_missing:
    raise FrameRangeError(
        f"{len(missing)} frames missing in {onset}..{offset}, e.g. {missing[:3]}")
  return [by_num[n] for n in want if n in by_num]


def cut_offset(files: Sequence[str], onset: int, offset: int, where: str,
               skips: "SkipLog") -> int:
  """`offset`, or the last frame on disk when the annotated offset lies past it.

  CASME II `sub16/EP01_08` is annotated past its last file: the clip is cut
  to the frames that exist and the cut is reported (`OFFSET_CUT`). Only
  when the onset itself is on disk; otherwise the offset is returned as is
  (and `frames_between` reports what is missing).
  """
  nums = [n for n in (frame_number(f) for f in files) if n is not None]
  if not nums or offset <= max(nums) or onset > max(nums) or onset > offset:
    return offset
  last = max(nums)
  skips.note(OFFSET_CUT, where, f"offset {offset} -> {last} (last frame on disk)")
  return last


def index_of(files: Sequence[str], number: int) -> int | None:
  """Index into `files` of the frame numbered `number`, or None."""
  for i, f in enumerate(files):
    if frame_number(f) == number:
      return i
  return None


class ImageReadError(IOError):
  """A frame file is missing, empty, not an image, or truncated."""


def read_rgb(path: str) -> np.ndarray:
  """One frame as RGB uint8 `[H, W, 3]` (grey SAMM/SMIC frames become 3-channel).

  Decoded with Pillow rather than OpenCV: OpenCV returns a half-grey image
  for a truncated JPEG (with only a libjpeg warning on stderr), Pillow
  raises, so a cut-off file becomes a counted skip, not a silently bad clip.
  Raises `ImageReadError`.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      im.load()
      rgb = np.asarray(im.convert("RGB"))
  except FileNotFoundError:
    raise ImageReadError(f"{path}: file not found") from None
  except (OSError, ValueError, SyntaxError) as e:   # PIL.UnidentifiedImageError is an OSError
    raise ImageReadError(f"{path}: {e}") from None
  if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
    raise ImageReadError(f"{path}: empty image of shape {rgb.shape}")
  return rgb


def check_image(path: str) -> None:
  """Raises `ImageReadError` unless `path` decodes completely.

  JPEGs are decoded at 1/8 scale (`draft`): libjpeg still reads the whole
  entropy-coded stream, so truncation is caught at a fraction of the cost.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as im:
      if im.format == "JPEG":
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
      im.load()
      if im.width == 0 or im.height == 0:
        raise ImageReadError(f"{path}: empty image")
  except FileNotFoundError:
    raise ImageReadError(f"{path}: file not found") from None
  except (OSError, ValueError, SyntaxError) as e:
    if isinstance(e, ImageReadError):
      raise
    raise ImageReadError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------
# Skips.


class SkipLog:
  """Counts skipped, repaired and excluded clips by reason; logs each one.

  * `skip`: a defect; the clip is not written (under `strict`, raises
    `CorpusDefectError` instead).
  * `note`: a kept clip that needed a documented fix (apex missing -> middle).
  * `exclude`: a row that is not in the protocol by design (CAS(ME)^2
    macro-expressions, unlabelled CK+ sequences, SMIC `non_micro` folders,
    clips outside an official list); counted, never a defect, never fatal.
  * `repair`: an erratum applied (sample, field, released, corrected, source).
  Only `skip` (a defect) stops a strict build.
  `summary()` reads e.g. "skipped 3 clips: 2 missing frames (sub04/EP12_01,
  sub05/EP01_02), 1 no face (sub07/EP03_01)".
  """

  def __init__(self, corpus: str, strict: bool = False):
    self.corpus = corpus
    self.strict = strict
    self.by_reason: dict[str, list[str]] = collections.OrderedDict()
    self.notes: dict[str, list[str]] = collections.OrderedDict()
    self.excluded: dict[str, list[str]] = collections.OrderedDict()
    # reason -> [{"clip": ..., "detail": ...}], for build_report.json.
    self.details: dict[str, dict[str, list[dict[str, str]]]] = {
        "skipped": {}, "repaired": {}, "excluded": {}}

  def _record(self, kind: str, reason: str, clip: str, detail: str) -> None:
    self.details[kind].setdefault(reason, []).append(
        {"clip": clip, "detail": detail})

  def skip(self, reason: str, clip: str, detail: str = "") -> None:
    if self.strict:
      raise CorpusDefectError(
          f"{self.corpus}: {clip}: {reason}{f' ({detail})' if detail else ''}. "
          "Strict build stopped at the first defect: fix or remove that "
          "entry, or build without --strict to skip it (skips are counted "
          f"and listed in {REPORT_FILE}).")
    self.by_reason.setdefault(reason, []).append(clip)
    self._record("skipped", reason, clip, detail)
    log.warning("%s: skipping %s: %s%s", self.corpus, clip, reason,
                f" ({detail})" if detail else "")

  def note(self, what: str, clip: str, detail: str = "") -> None:
    """A kept clip that needed a documented fix (e.g. apex missing -> middle)."""
    self.notes.setdefault(what, []).append(clip)
    self._record("repaired", what, clip, detail)
    log.info("%s: %s: %s%s", self.corpus, clip, what,
             f" ({detail})" if detail else "")

  def repair(self, clip: str, e: "Erratum") -> None:
    """An erratum applied to `clip` (listed under `repaired` as `ERRATUM`)."""
    self.notes.setdefault(ERRATUM, []).append(clip)
    self.details["repaired"].setdefault(ERRATUM, []).append({
        "clip": clip, "detail": f"{e.field} {e.released!r} -> {e.corrected!r}",
        "sample": e.sample, "field": e.field, "released": e.released,
        "corrected": e.corrected, "source": e.source})
    log.info("%s: %s: erratum %s %r -> %r (%s)", self.corpus, clip, e.field,
             e.released, e.corrected, e.source)

  def forget_repairs(self, clip: str) -> None:
    """Drops the stand-in repairs of a clip that is then excluded (not written).

    Applied errata stay listed: they describe the annotation, written or not.
    """
    for what in list(self.notes):
      if what == ERRATUM or clip not in self.notes[what]:
        continue
      self.notes[what] = [c for c in self.notes[what] if c != clip]
      self.details["repaired"][what] = [
          d for d in self.details["repaired"][what] if d["clip"] != clip]
      if not self.notes[what]:
        del self.notes[what], self.details["repaired"][what]

  @property
  def excluded_total(self) -> int:
    return sum(len(v) for v in self.excluded.values())

  def exclusions(self, why: str) -> int:
    return len(self.excluded.get(why, []))

  def exclude(self, why: str, clip: str, detail: str = "") -> None:
    """A row outside the protocol by design (not a defect, not an error)."""
    self.excluded.setdefault(why, []).append(clip)
    self._record("excluded", why, clip, detail)
    log.info("%s: excluding %s: %s", self.corpus, clip, why)

  @property
  def total(self) -> int:
    return sum(len(v) for v in self.by_reason.values())

  def count(self, reason: str) -> int:
    return len(self.by_reason.get(reason, []))

  def noted(self, what: str) -> int:
    return len(self.notes.get(what, []))

  @staticmethod
  def _fmt(d: Mapping[str, list[str]]) -> str:
    parts = []
    for reason, clips in d.items():
      shown = ", ".join(clips[:5]) + (", ..." if len(clips) > 5 else "")
      parts.append(f"{len(clips)} {reason} ({shown})")
    return ", ".join(parts)

  def summary(self) -> str:
    s = f"{self.corpus}: skipped {self.total} clips"
    if self.total:
      s += ": " + self._fmt(self.by_reason)
    if self.notes:
      s += "; kept with fixes: " + self._fmt(self.notes)
    if self.excluded:
      s += "; excluded by protocol: " + ", ".join(
          f"{len(v)} {k}" for k, v in self.excluded.items())
    return s


# ----------------------------------------------------------------------------
# Labels.

# MEGC 2019 composite 3-class protocol (See et al., "MEGC 2019 - the second
# facial micro-expressions grand challenge", FG 2019). The folding is PER
# CORPUS, as the challenge defined it and as its official list (below)
# records: CASME II negative = disgust + repression only (its fear and
# sadness clips are not in the composite); SAMM negative = anger, contempt,
# disgust, fear, sadness; SMIC is already negative / positive / surprise.
# 'others' is in no 3-class protocol.
MEGC_3CLASS_NAMES = ("negative", "positive", "surprise")
MEGC2019_CASME2 = {
    "disgust": "negative", "repression": "negative",
    "happiness": "positive", "surprise": "surprise",
}
MEGC2019_SAMM = {
    "anger": "negative", "contempt": "negative", "disgust": "negative",
    "fear": "negative", "sadness": "negative",
    "happiness": "positive", "surprise": "surprise",
}
# Corpora outside the MEGC 2019 composite (CAS(ME)^2, CAS(ME)^3, CK+):
# their 3-class configs fold every negative emotion into 'negative', as
# the MEGC 2019 SAMM rule does (no official list exists for them). Keys are
# lower-case corpus strings in each corpus' spelling (CAS(ME)^3 'happy' /
# 'sad', CAS(ME)^2 already codes 'negative' / 'positive').
MEGC_3CLASS = {
    "negative": "negative", "disgust": "negative", "repression": "negative",
    "fear": "negative", "sadness": "negative", "sad": "negative",
    "anger": "negative", "angry": "negative", "contempt": "negative",
    "positive": "positive", "happiness": "positive", "happy": "positive",
    "surprise": "surprise", "surprised": "surprise",
}

# The official MEGC 2019 composite membership (442 clips, 68 subjects), as
# shipped in megc2019_composite.csv (source cited in its header).
MEGC2019_LIST = "megc2019_composite.csv"


@dataclasses.dataclass(frozen=True)
class Membership:
  """An official sample list a protocol is restricted to.

  `file` is a CSV next to this module with columns dataset, subject, clip,
  label (a class name); `name` is what reports call it.
  """
  name: str
  file: str

  def load(self, dataset: str) -> dict[str, str]:
    """`'<subject>/<clip>'` -> label name for `dataset`."""
    return {f"{r['subject']}/{r['clip']}": r["label"]
            for r in read_list(self.file) if r["dataset"] == dataset}


MEGC2019 = Membership("MEGC 2019 composite list", MEGC2019_LIST)


def read_list(name: str) -> list[dict[str, str]]:
  """Rows of a shipped list CSV (`#` lines are its header notes)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
  with open(path, newline="") as f:
    return list(csv.DictReader(line for line in f if not line.startswith("#")))


def protocol_label(emotion: str, class_names: Sequence[str],
                   mapping: Mapping[str, str] | None = None) -> int:
  """Class index of a corpus emotion string in a protocol; -1 when not in it.

  `mapping` folds lower-cased corpus strings into class names first (absent
  keys map to themselves).
  """
  e = emotion.strip().lower()
  if mapping is not None:
    e = mapping.get(e, e if e in class_names else "")
  return class_names.index(e) if e in class_names else -1


# ----------------------------------------------------------------------------
# Plan -> examples.


@dataclasses.dataclass
class ClipPlan:
  """One clip to write: which files, and the annotation fields.

  `files` are the clip's frames onset..offset; `onset/apex/offset` index them.
  `apex_annotated` is False when `apex` is a stand-in (the middle index: the
  annotation had no usable apex, or the corpus has none), written as the
  record's `apex_annotated`.
  `matrix` (set by the alignment pass) is the 2x3 normalised similarity
  transform from `face_align`, or None for resize-only.
  """
  subject: str      # '<dataset>/<subject>'
  clip: str         # unique within the subject
  files: list[str]
  emotion: str
  action_units: str
  label: int
  apex: int
  onset: int = 0
  offset: int = -1
  fps: float = 0.0
  apex_annotated: bool = True
  matrix: Any = None

  @property
  def sample_id(self) -> str:
    return f"{self.subject}/{self.clip}"

  @property
  def where(self) -> str:
    """`<subject>/<clip>` without the dataset, as the plan's skips name clips."""
    return f"{self.subject.split('/', 1)[-1]}/{self.clip}"

  def __post_init__(self):
    if self.offset < 0:
      self.offset = len(self.files) - 1


def clip_indices(apex_num: int | None,
                 files: Sequence[str]) -> tuple[int, int, int, bool]:
  """onset/apex/offset INDICES into `files` (the onset..offset frames).

  The apex is looked up by frame number; when it is missing, or not among
  the files, or outside onset..offset, the middle index is used and the
  returned flag is True (the caller counts and logs it).
  """
  last = len(files) - 1
  if apex_num is not None:
    i = index_of(files, apex_num)
    if i is not None:
      return 0, i, last, False
  return 0, last // 2, last, True


class CorpusConfig(tfds.core.BuilderConfig):
  """A protocol x size (x release/variant) configuration.

  Attributes:
    protocol: key into the builder's `PROTOCOLS` (class names + mapping).
    size: output frames are `size x size` RGB.
    alignment: 'dlib' (detect on onset, skip on failure), 'dlib_or_center'
      (pre-cropped releases: centre crop when no face is found) or 'none'
      (resize only: already-cropped releases, fast tests).
    variant: corpus-specific release/camera, e.g. CASME II 'raw'/'cropped',
      SMIC 'HS'/'VIS'/'NIR'.
    annotation: the annotation file to read (absolute, or relative to
      manual_dir) when a release holds several versions; '' = the only one.
  """

  def __init__(self, *, protocol: str, size: int = 112,
               alignment: str = "dlib", variant: str = "", annotation: str = "",
               **kwargs):
    if alignment not in ("dlib", "dlib_or_center", "none"):
      raise ValueError(f"Unknown alignment {alignment!r}")
    kwargs.setdefault("name", f"{protocol}_{size}" + (f"_{variant}" if variant else ""))
    super().__init__(**kwargs)
    self.protocol = protocol
    self.size = size
    self.alignment = alignment
    self.variant = variant
    self.annotation = annotation


def make_configs(protocols: Mapping[str, Any], sizes: Iterable[int] = (112, 224),
                 variants: Mapping[str, str] | None = None,
                 version: str | None = None,
                 description: str = "") -> list[CorpusConfig]:
  """protocol x size (x variant) configs named `<protocol>_<size>[_<variant>]`.

  `variants` maps a variant name to its alignment; the first variant gets
  the plain name (`5class_112`), the others a suffix. `version` None (the
  default): the configs take the builder's `VERSION`, so bumping it versions
  every registered config.
  """
  variants = variants or {"": "dlib"}
  out = []
  for vi, (variant, alignment) in enumerate(variants.items()):
    for p in protocols:
      for s in sizes:
        name = f"{p}_{s}" + (f"_{variant.lower()}" if vi else "")
        out.append(CorpusConfig(
            name=name, protocol=p, size=s, alignment=alignment,
            variant=variant, version=version,
            description=f"{description} protocol {p}, {s}x{s}, "
                        f"{variant or 'default'} release, alignment {alignment}."))
  return out


class CorpusBuilderMixin:
  """Shared `_info` / `_split_generators` / `_generate_examples` and the report.

  A builder sets `CORPUS` (the `<dataset>` namespace), `TITLE`,
  `PROTOCOLS = {name: (class_names, mapping or None)}`,
  `MANUAL_DOWNLOAD_INSTRUCTIONS`, optionally `EMOTIONS` (every emotion string
  the corpus uses, lower-case; default: the protocols' names and mapping
  keys), and implements `_plan(manual_dir, skips)` returning `ClipPlan`s with
  labels from `self.emotion_label`. After a build, `self.skips` holds the
  `SkipLog` and `self.report` the content of `build_report.json`.

  Optional: `MEMBERSHIP = {protocol: Membership}` (an official list the
  protocol is restricted to: clips it does not name are exclusions, the
  list's label is the record's), `ERRATA` (a tuple of `Erratum`, applied by
  `plan_sheet_rows` / `apply_errata` and listed under `repaired`).
  Builders find their annotation with `self.locate_annotation`, which
  records the file and its sha256 in the report and `info.metadata`.

  Constructor keywords (through `tfds.builder(name, strict=..., ...)`):
    strict: stop with `CorpusDefectError` at the first DEFECT (exclusions
      and applied errata never stop it). A keyword rather than a config
      field so that a strict and a lenient build of one config write the
      same dataset.
    annotation: the annotation file (overrides the config's `annotation`),
      required when the release holds several versions side by side.
    alignment: overrides the config's alignment ('dlib', 'dlib_or_center',
      'none'), e.g. 'none' for already-aligned frames or fast tests; the
      value used is recorded in `info.metadata['alignment']`.
  """

  CORPUS = ""
  TITLE = ""
  PROTOCOLS: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]] = {}
  EMOTIONS: frozenset[str] = frozenset()
  MEMBERSHIP: Mapping[str, Membership] = {}
  ERRATA: Sequence[Erratum] = ()
  HOMEPAGE = ""
  CITATION = ""

  def __init__(self, *args, strict: bool = False, alignment: str | None = None,
               annotation: str | None = None, **kwargs):
    if alignment not in (None, "dlib", "dlib_or_center", "none"):
      raise ValueError(f"Unknown alignment {alignment!r}")
    self.strict = bool(strict)
    self._alignment = alignment
    self._annotation = annotation
    self.annotation_read: dict[str, str] | None = None
    self.report: dict[str, Any] | None = None
    super().__init__(*args, **kwargs)

  def locate_annotation(self, manual: str, pattern: str,
                        subdirs: Sequence[str] = ()) -> str:
    """The annotation file (see `find_annotation`); records it and its sha256."""
    explicit = self._annotation or getattr(self.builder_config, "annotation", "")
    path = find_annotation(manual, pattern, self.TITLE,
                           self.MANUAL_DOWNLOAD_INSTRUCTIONS, explicit=explicit,
                           subdirs=subdirs)
    self.annotation_read = {"file": os.path.relpath(path, manual),
                            "sha256": sha256_file(path)}
    return path

  @property
  def alignment(self) -> str:
    return self._alignment or self.builder_config.alignment

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    names, _ = self.PROTOCOLS[cfg.protocol]
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    return self.dataset_info_from_configs(
        features=records.me_features(cfg.size),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        metadata=tfds.core.MetadataDict({
            "class_names": list(names),
            "protocol": cfg.protocol,
            "corpus": self.CORPUS,
            "size": cfg.size,
            "alignment": (face_align.ALIGN_VERSION if self.alignment != "none"
                          else "none"),
            "variant": cfg.variant,
        }),
    )

  def label_for(self, emotion: str) -> int:
    names, mapping = self.PROTOCOLS[self.builder_config.protocol]
    return protocol_label(emotion, names, mapping)

  def known_emotions(self) -> frozenset[str]:
    if self.EMOTIONS:
      return frozenset(e.lower() for e in self.EMOTIONS)
    known = set()
    for names, mapping in self.PROTOCOLS.values():
      known.update(n.lower() for n in names)
      known.update(k.lower() for k in (mapping or {}))
    return frozenset(known)

  def emotion_label(self, emotion: str, where: str, skips: SkipLog) -> int | None:
    """The label of a KNOWN emotion string (-1 if outside the protocol).

    An unknown string (a typo, a blank cell) is a defect: skipped and
    counted (or raised under strict), never silently labelled -1.
    """
    if emotion.strip().lower() not in self.known_emotions():
      skips.skip(UNKNOWN_EMOTION, where, repr(emotion))
      return None
    return self.label_for(emotion)

  def plan_sheet_rows(self, rows: Sequence[Mapping[str, Any]], root: str,
                      subject_name: Callable[[Any], str | None], xlsx: str,
                      skips: SkipLog, fps: float,
                      apex_column: str) -> list[ClipPlan]:
    """Clip plans from annotation rows keyed like CASME II's and SAMM's sheets.

    Rows (from `read_xlsx_rows`) carry subject, filename, onset/apex/offset
    frame numbers, action units and estimated emotion; frames live in
    `root/<subject>/<filename>/`. Every row that cannot become a clip is a
    counted skip with its reason; a missing apex is a counted repair
    (`APEX_MISSING`, the clip's `apex_annotated` False).
    """
    plans = []
    fields = {"onset": "onsetframe", "apex": "apexframe", "offset": "offsetframe"}
    for r in rows:
      subj = subject_name(r.get("subject"))
      clip = cell_str(r.get("filename"))
      where = f"{subj}/{clip}" if subj and clip else f"row {r['_row']}"
      # Errata are keyed by '<subject>/<clip>' or, where the source gives
      # only a spreadsheet row, by 'row <n>'.
      apply_errata(self.ERRATA, (where, f"row {r['_row']}"), r, fields, skips, where)
      onset, offset = cell_int(r.get("onsetframe")), cell_int(r.get("offsetframe"))
      if not subj or not clip or onset is None or offset is None:
        skips.skip("bad annotation row", where, f"{xlsx} row {r['_row']}")
        continue
      folder = find_child(os.path.join(root, subj), clip, kind="dir")
      if folder is None:
        skips.skip("missing folder", where)
        continue
      on_disk = list_frames(folder)
      offset = cut_offset(on_disk, onset, offset, where, skips)
      try:
        files = frames_between(on_disk, onset, offset)
      except FrameRangeError as e:
        skips.skip(e.reason, where, str(e))   # empty folder / onset > offset / missing frames
        continue
      emotion = cell_str(r.get("estimatedemotion"))
      label = self.emotion_label(emotion, where, skips)
      if label is None:
        continue
      apex_cell = r.get("apexframe")
      o, a, f, guessed = clip_indices(cell_int(apex_cell), files)
      if guessed:   # noted only for clips that are kept
        skips.note(APEX_MISSING, where, f"{apex_column}={apex_cell!r}")
      plans.append(ClipPlan(
          subject=f"{self.CORPUS}/{subj}", clip=clip, files=files, emotion=emotion,
          action_units=cell_str(r.get("actionunits")),
          label=label, onset=o, apex=a, offset=f, fps=fps,
          apex_annotated=not guessed))
    return plans

  # --------------------------------------------------------------------------

  def download_and_prepare(self, *args, **kwargs):
    # TFDS writes into an `incomplete.*` folder and renames it at the end;
    # the report is written after that, into the final versioned data dir.
    super().download_and_prepare(*args, **kwargs)
    if self.report is not None:
      path = os.path.join(self.data_dir, REPORT_FILE)
      with open(path, "w") as f:
        json.dump(self.report, f, indent=1)
      log.warning("%s: report in %s", self.CORPUS, path)

  def _split_generators(self, dl_manager):
    # `dl_manager.manual_dir` raises a bare AssertionError when the folder is
    # missing or empty; read the path and raise our own message instead.
    manual = require_manual_dir(getattr(dl_manager, "_manual_dir", None),
                                self.TITLE, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    self.report = None
    self.annotation_read = None
    self.skips = SkipLog(self.CORPUS, strict=self.strict)
    plans = self._plan(manual, self.skips)
    # Every annotation row / clip folder the plan looked at.
    self._rows_read = (len(plans) + self.skips.total
                       + sum(len(v) for v in self.skips.excluded.values()))
    self._manual = manual
    plans = self._apply_membership(plans)
    if self.annotation_read:   # saved with dataset_info.json at the end
      self.info.metadata["annotation_file"] = self.annotation_read["file"]
      self.info.metadata["annotation_sha256"] = self.annotation_read["sha256"]
    plans = self._check_frames(plans)
    plans = self._align(plans)
    by_subject: dict[str, list[ClipPlan]] = collections.OrderedDict()
    seen = set()
    for p in plans:
      if p.sample_id in seen:
        self.skips.skip("duplicate sample_id", p.where)
        continue
      seen.add(p.sample_id)
      by_subject.setdefault(p.subject, []).append(p)
    log.warning("%s", self.skips.summary())
    if not by_subject:
      raise manual_dir_error(
          self.TITLE, f"no usable clips under {manual!r} ({self.skips.summary()}).",
          self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    names = {}
    for subj in by_subject:
      n = records.split_name(subj)
      if n in names:
        raise ValueError(f"Subjects {names[n]!r} and {subj!r} share split {n!r}")
      names[n] = subj
    self.planned = by_subject   # subject -> ClipPlans, for reports and tests
    self._splits_left = len(by_subject)
    self._written: collections.Counter = collections.Counter()
    self._per_split: dict[str, int] = {}
    return {records.split_name(s): self._generate_examples(ps)
            for s, ps in sorted(by_subject.items(), key=lambda kv: natural_key(kv[0]))}

  def membership(self) -> Membership | None:
    """The official list this build's protocol is restricted to, or None."""
    return self.MEMBERSHIP.get(self.builder_config.protocol)

  def _apply_membership(self, plans: list[ClipPlan]) -> list[ClipPlan]:
    """Restricts a protocol to its official list (`MEMBERSHIP`), if it has one.

    A clip the list does not name, or whose emotion the protocol's mapping
    leaves out, is an exclusion (counted, never a defect). A listed clip
    takes the list's label; where the mapping disagrees, that is a repair.
    """
    member = self.membership()
    if member is None:
      return plans
    names, _ = self.PROTOCOLS[self.builder_config.protocol]
    listed = member.load(self.CORPUS)
    kept = []
    for p in plans:
      key = p.where
      if p.label < 0 or key not in listed:
        self.skips.forget_repairs(key)
        if p.label < 0:
          self.skips.exclude(OUTSIDE_PROTOCOL, key, p.emotion)
        else:
          self.skips.exclude(NOT_IN_LIST, key, member.name)
        continue
      want = names.index(listed[key])
      if want != p.label:
        self.skips.note("label from the official list", key,
                        f"{p.emotion!r} -> {listed[key]} ({member.name})")
        p.label = want
      kept.append(p)
    return kept

  def _split_done(self) -> None:
    # Repeat the summary once the last split is written, so it ends the build
    # log, and assemble the report.
    self._splits_left -= 1
    if self._splits_left == 0:
      log.warning("%s (build done)", self.skips.summary())
      self.report = self._make_report()

  def _make_report(self) -> dict[str, Any]:
    cfg = self.builder_config
    names, _ = self.PROTOCOLS[cfg.protocol]
    per_class = {n: self._written.get(i, 0) for i, n in enumerate(names)}
    per_class["-1"] = self._written.get(-1, 0)
    return {
        "dataset": f"{self.name}/{cfg.name}",
        "version": str(self.version),
        "manual_dir": self._manual,
        "strict": self.strict,
        "alignment": self.alignment,
        "class_names": list(names),
        "rows_read": self._rows_read,
        "samples_written": sum(self._written.values()),
        "per_class": per_class,
        "per_split": dict(sorted(self._per_split.items())),
        "annotation": self.annotation_read,
        "membership": self.membership().name if self.membership() else None,
        # Defects (`skipped`) stop a strict build; repairs and exclusions never do.
        "skipped_total": self.skips.total,
        "defects_total": self.skips.total,
        "excluded_total": self.skips.excluded_total,
        "skipped": self.skips.details["skipped"],
        "repaired": self.skips.details["repaired"],
        "excluded": self.skips.details["excluded"],
        "summary": self.skips.summary(),
    }

  def _check_frames(self, plans: list[ClipPlan]) -> list[ClipPlan]:
    """Skips clips with an unreadable or truncated frame, before any split is made.

    Checked up front because TFDS cannot write a split that ends up empty
    (a subject whose every clip fails while being written).
    """
    kept = []
    for p in tfds.core.utils.tqdm(plans, desc=f"{self.CORPUS}: checking frames",
                                  unit=" clips", leave=False):
      try:
        for path in p.files:
          check_image(path)
      except ImageReadError as e:
        self.skips.skip(UNREADABLE_IMAGE, p.where, str(e))
        continue
      kept.append(p)
    return kept

  def _align(self, plans: list[ClipPlan]) -> list[ClipPlan]:
    """Computes each clip's transform on its onset frame (skips faceless clips)."""
    if self.alignment == "none":
      return plans
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    aligner = face_align.FaceAligner()
    kept = []
    for p in tfds.core.utils.tqdm(plans, desc=f"{self.CORPUS}: face detection",
                                  unit=" clips", leave=False):
      try:
        onset = read_rgb(p.files[p.onset])
      except ImageReadError as e:
        self.skips.skip(UNREADABLE_IMAGE, p.where, str(e))
        continue
      m = aligner.transform(onset)
      if m is None:
        if self.alignment == "dlib_or_center":
          self.skips.note("no face, centre crop", p.where)
          m = face_align.CENTER
        else:
          self.skips.skip("no face", p.where, p.files[p.onset])
          continue
      p.matrix = m
      kept.append(p)
    return kept

  def _encode_clip(self, p: ClipPlan) -> list[bytes] | None:
    """The clip's frames as PNG crops, or None (skipped) if one is unreadable.

    Frames were checked before the splits were made; a failure here means a
    file changed during the build.
    """
    from tfds_builders import face_align  # pylint: disable=g-import-not-at-top
    size = self.builder_config.size
    encoded = []
    # Frame by frame, one clip at a time: a SAMM clip is up to ~100 frames of
    # 2040x1088, so only the clip's PNG crops are ever held.
    for path in p.files:
      try:
        frame = read_rgb(path)
      except ImageReadError as e:
        self.skips.skip(UNREADABLE_IMAGE, p.where, str(e))
        return None
      if p.matrix is None:
        out = face_align.resize(frame, size)
      else:
        (out,) = face_align.apply([frame], p.matrix, size)
      encoded.append(records.encode_png(out))
    return encoded

  def _generate_examples(self, plans: Sequence[ClipPlan]) -> Iterator[tuple[str, dict]]:
    n = 0
    for p in plans:
      encoded = self._encode_clip(p)
      if encoded is None:
        continue
      n += 1
      self._written[p.label] += 1
      yield p.sample_id, {
          "frames": encoded,
          "label": p.label,
          "emotion": p.emotion,
          "subject": p.subject,
          "sample_id": p.sample_id,
          "onset": p.onset,
          "apex": p.apex,
          "apex_annotated": bool(p.apex_annotated),
          "offset": p.offset,
          "action_units": p.action_units,
          "fps": p.fps,
      }
    if plans:
      self._per_split[records.split_name(plans[0].subject)] = n
    self._split_done()


def require_path(found: str | None, corpus: str, what: str, where: str,
                 instructions: str) -> str:
  """`found`, or a `ManualDirError` saying `what` was not found in `where`."""
  if found is None:
    listing = sorted(os.listdir(where))[:10] if os.path.isdir(where) else []
    raise manual_dir_error(
        corpus, f"{what} not found in {where!r} (it holds: {listing}).",
        instructions)
  return found
