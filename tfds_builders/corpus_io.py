"""Files and spreadsheets of a corpus release, as unpacked.

* `ManualDirError` / `manual_dir_error` / `require_path`: the one exception a
  builder raises when `manual_dir` is missing or laid out wrongly; its
  message names the corpus, where to request it and the exact layout.
* `find_child` / `find_nested` / `find_annotation`: folders and annotation
  files matched ignoring case, also one unpack level further down.
* `read_xlsx_rows` / `read_sheet` / `cell_str` / `cell_int`: annotation
  spreadsheets via openpyxl (no pandas).
* `list_frames` / `frame_number` / `natural_key` / `subfolders`: frame
  files and folders in natural
  order, tolerant of zero padding, case and a prefix (`img46.jpg`,
  `reg_img46.jpg`, `006_05562.jpg`, `image000001.bmp`, `IMG001.JPG`).
* `frames_between`: annotated onset/offset frame NUMBERS -> the clip's files.
* `read_rgb` / `check_image`: frames decoded with Pillow (truncation raises).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Sequence

import numpy as np

from tfds_builders import skiplog


IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class ManualDirError(ValueError):
  """`manual_dir` is missing or does not hold the corpus in the expected layout."""


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


def require_path(found: str | None, corpus: str, what: str, where: str,
                 instructions: str) -> str:
  """`found`, or a `ManualDirError` saying `what` was not found in `where`."""
  if found is None:
    listing = sorted(os.listdir(where))[:10] if os.path.isdir(where) else []
    raise manual_dir_error(
        corpus, f"{what} not found in {where!r} (it holds: {listing}).",
        instructions)
  return found


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


_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
  """Sort key: digit runs compare as numbers, text case-insensitively."""
  parts = _NUM.split(name.lower())
  return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def subfolders(parent: str, skip_hidden: bool = True) -> list[str]:
  """Names of the folders in `parent`, in natural order (`s2` before `s10`).

  Files (`Thumbs.db`, `.DS_Store`) are left out, and so are hidden folders
  unless `skip_hidden` is False.
  """
  return [d for d in sorted(os.listdir(parent), key=natural_key)
          if os.path.isdir(os.path.join(parent, d))
          and not (skip_hidden and d.startswith("."))]


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

  def __init__(self, message: str, reason: str = skiplog.MISSING_FRAMES):
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
    raise FrameRangeError(f"onset {onset} > offset {offset}", skiplog.ONSET_AFTER_OFFSET)
  if not files:
    raise FrameRangeError("no image files in the clip folder", skiplog.EMPTY_FOLDER)
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
