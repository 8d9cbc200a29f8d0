"""SAMM (Davison et al., IEEE TAC 2018): 159 micro-movement clips, 32 subjects, 200 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

Annotation defects handled (counted and logged):
  * The table header sits below a block of notes rows: it is located by its
    column names, not a fixed row.
  * `Subject` is '006' or 6 -> '006'.
  * Frame numbers are ABSOLUTE file numbers (`006_05562.jpg` is frame 5562);
    they are mapped to indices into the onset..offset frames.
  * `Apex Frame` is -1 or blank for some rows -> apex = middle index.
  * Onset/offset files absent on disk -> clip skipped ("missing frames").
Frames are greyscale JPEGs; they are written as 3-channel RGB.
"""

from __future__ import annotations

import re

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "samm"
FPS = 200.0
XLSX_RE = r"SAMM.*(FACS|Codes).*\.xlsx"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SAMM is licensed and cannot be downloaded automatically. Request it from
Manchester Metropolitan University (Moi Hoon Yap's group):
https://helward.mmu.ac.uk/STAFF/M.Yap/dataset.php (sign the licence
agreement; the micro-expression release is "SAMM").

Unpack it so that manual_dir holds:

  <manual_dir>/SAMM_Micro_FACS_Codes_v2.xlsx   (notes rows, then a table with
                                                columns Subject, Filename,
                                                Inducement Code, Onset Frame,
                                                Apex Frame, Offset Frame,
                                                Duration, Type, Action Units,
                                                Estimated Emotion, Notes)
  <manual_dir>/SAMM/006/006_1_2/006_05562.jpg ...

Frame numbers in the spreadsheet are the numbers in the file names.
"""

PROTOCOLS = {
    # The common SAMM 5-class protocol (classes with >= 10 clips); the
    # spreadsheet says 'Other', some copies 'Others'.
    "5class": (("anger", "contempt", "happiness", "surprise", "other"),
               {"others": "other"}),
    # MEGC 2019 composite (See et al., FG 2019): negative = anger, contempt,
    # disgust, fear, sadness; 'Other' is not in it. Restricted to the
    # official list (`MEMBERSHIP`): 133 clips, 28 subjects.
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC2019_SAMM),
}
MEMBERSHIP = {"3class": labels.MEGC2019}
EMOTIONS = frozenset({"anger", "contempt", "disgust", "fear", "happiness",
                      "sadness", "surprise", "other", "others"})
# Published corrections (tvaranka/meb, meb/datasets/datasets.py, class
# SAMM: "Missing apex in file, change based on optical flow"). meb names the
# rows by DataFrame index 125, 132, 133, i.e. spreadsheet rows 140, 147,
# 148 of SAMM_Micro_FACS_Codes_v2.xlsx (13 rows of notes and the header
# first); applied only while that row's apex cell is still missing. meb's
# offset fix (index 56 -> 5739) gives no released value to check, so it
# is not applied blind: an offset past the last frame is cut by rule.
_MEB = "tvaranka/meb meb/datasets/datasets.py (SAMM: apex missing, from optical flow)"
ERRATA = (
    labels.Erratum("row 140", "apex", "", 1105, _MEB),
    labels.Erratum("row 147", "apex", "", 4945, _MEB),
    labels.Erratum("row 148", "apex", "", 5130, _MEB),
)


def subject_name(cell) -> str | None:
  """Spreadsheet Subject (6, 6.0, '006') -> '006'."""
  s = corpus_io.cell_str(cell)
  return f"{int(s):03d}" if re.fullmatch(r"\d+", s) else None


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """SAMM micro-expression clips (onset..offset), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = corpus.RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(PROTOCOLS, description="SAMM")
  DEFAULT_CONFIG_NAME = "5class_112"
  CORPUS = CORPUS
  TITLE = "SAMM"
  PROTOCOLS = PROTOCOLS
  MEMBERSHIP = MEMBERSHIP
  EMOTIONS = EMOTIONS
  ERRATA = ERRATA
  HOMEPAGE = "https://helward.mmu.ac.uk/STAFF/M.Yap/dataset.php"
  CITATION = """\
@article{davison2018samm,
  title={{SAMM}: A spontaneous micro-facial movement dataset},
  author={Davison, Adrian K. and Lansley, Cliff and Costen, Nicholas and Tan, Kevin and Yap, Moi Hoon},
  journal={IEEE Transactions on Affective Computing}, volume={9}, number={1}, pages={116--129}, year={2018}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    xlsx = self.locate_annotation(manual, XLSX_RE)
    root = corpus_io.require_path(corpus_io.find_nested(manual, "SAMM", kind="dir"),
                                  self.TITLE, "frame folder SAMM/", manual, instr)
    try:
      rows = corpus_io.read_xlsx_rows(
          xlsx, ["Subject", "Filename", "Onset Frame", "Apex Frame",
                 "Offset Frame", "Estimated Emotion"])
    except ValueError as e:
      raise corpus_io.manual_dir_error(self.TITLE, str(e), instr) from e
    return self.plan_sheet_rows(rows, root, subject_name, xlsx, skips, FPS,
                                apex_column="Apex Frame")
