"""One clip to write, and how a release's annotation becomes it.

`ClipPlan` holds a clip's frame files and annotation fields; the helpers turn
annotated frame NUMBERS into file lists and INDICES, counting every skip and
repair in the build's `SkipLog`: `clip_files` (onset..offset on disk),
`cut_offset` (an offset past the last frame, cut), `annotated_apex` (a missing
apex -> the middle frame), `sequence_files` (whole-sequence folders).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from tfds_builders import corpus_io
from tfds_builders import skiplog


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
    i = corpus_io.index_of(files, apex_num)
    if i is not None:
      return 0, i, last, False
  return 0, last // 2, last, True


def cut_offset(files: Sequence[str], onset: int, offset: int, where: str,
               skips: skiplog.SkipLog) -> int:
  """`offset`, or the last frame on disk when the annotated offset lies past it.

  CASME II `sub16/EP01_08` is annotated past its last file: the clip is cut
  to the frames that exist and the cut is reported (`OFFSET_CUT`). Only
  when the onset itself is on disk; otherwise the offset is returned as is
  (and `frames_between` reports what is missing).
  """
  nums = [n for n in (corpus_io.frame_number(f) for f in files) if n is not None]
  if not nums or offset <= max(nums) or onset > max(nums) or onset > offset:
    return offset
  last = max(nums)
  skips.note(skiplog.OFFSET_CUT, where, f"offset {offset} -> {last} (last frame on disk)")
  return last


def annotated_apex(apex_cell: Any, files: Sequence[str], where: str,
                   skips: skiplog.SkipLog,
                   column: str) -> tuple[int, int, int, bool]:
  """`clip_indices` of an annotation's apex cell; a stand-in apex is noted.

  Call it for clips that are kept: a missing apex (-> the middle frame) is
  a repair, `APEX_MISSING`, whose detail names `column` and the cell.
  """
  o, a, f, guessed = clip_indices(corpus_io.cell_int(apex_cell), files)
  if guessed:
    skips.note(skiplog.APEX_MISSING, where, f"{column}={apex_cell!r}")
  return o, a, f, guessed


def clip_files(on_disk: Sequence[str], onset: int, offset: int, where: str,
               skips: skiplog.SkipLog, max_missing: int = 0) -> list[str] | None:
  """The files numbered onset..offset of `on_disk`, or None after a counted skip.

  An offset past the last frame is cut first (`cut_offset`, noted). The
  skip's reason is the `FrameRangeError`'s: empty folder, onset > offset or
  missing frames.
  """
  offset = cut_offset(on_disk, onset, offset, where, skips)
  try:
    return corpus_io.frames_between(on_disk, onset, offset, max_missing=max_missing)
  except corpus_io.FrameRangeError as e:
    skips.skip(e.reason, where, str(e))
    return None


def sequence_files(folder: str, where: str,
                   skips: skiplog.SkipLog) -> list[str] | None:
  """The frames of a whole-sequence clip folder (CK+, Oulu-CASIA, SMIC).

  None after a counted skip when the folder holds no frame or only one.
  """
  files = corpus_io.list_frames(folder)
  if not files:
    skips.skip(skiplog.EMPTY_FOLDER, where, folder)
    return None
  if len(files) < 2:
    skips.skip("fewer than 2 frames", where, folder)
    return None
  return files
