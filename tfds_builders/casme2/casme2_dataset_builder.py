"""CASME II (Yan et al., PLoS ONE 2014): 255 micro-expression clips, 26 subjects, 200 fps.

Licensed: read from `manual_dir`, see `MANUAL_DOWNLOAD_INSTRUCTIONS`.

Annotation defects handled (all counted and logged, never silent):
  * `Subject` is an int (1 -> 'sub01'), sometimes text ('1', '01', 'sub01').
  * Frame numbers are ints, floats (46.0) or text ('46').
  * `ApexFrame` is '/' (or blank) for some rows -> apex = middle index.
  * Onset/offset frame files absent on disk -> clip skipped ("missing frames"),
    except an offset past the clip's last file (`sub16/EP01_08`): cut to the
    last frame, reported as a repair.
  * Blank unnamed columns between the named ones are ignored.
"""

from __future__ import annotations

import re

import tensorflow_datasets as tfds

from tfds_builders import clips
from tfds_builders import corpus
from tfds_builders import corpus_io
from tfds_builders import labels
from tfds_builders import skiplog

CORPUS = "casme2"
FPS = 200.0
XLSX_RE = r"CASME2[-_ ]?coding.*\.xlsx"
RAW_DIRS = ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW")
CROPPED_DIRS = ("Cropped", "CASME2_Cropped", "CASME2-Cropped")

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CASME II is licensed and cannot be downloaded automatically. Request it from
the Institute of Psychology, Chinese Academy of Sciences (Fu Xiaolan's lab):
http://casme.psych.ac.cn/casme/e2 (formerly
http://fu.psych.ac.cn/CASME/casme2-en.php); sign the release agreement.

Unpack it so that manual_dir holds:

  <manual_dir>/CASME2-coding-20140508.xlsx        (columns Subject, Filename,
                                                   OnsetFrame, ApexFrame,
                                                   OffsetFrame, Action Units,
                                                   Estimated Emotion)
  <manual_dir>/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...
                                                  (configs '*_112', '*_224')
  <manual_dir>/Cropped/sub01/EP02_01f/reg_img46.jpg ...
                                                  (configs '*_cropped')

Frame file numbers are the spreadsheet's frame numbers. Unpacked archives
that nest a folder in its namesake (CASME2_RAW_selected/CASME2_RAW_selected/,
Cropped/Cropped/) are found too. With several coding files side by side
(CASME2-coding-20140508.xlsx and -20190701.xlsx) name one with
annotation=FILE (scripts/build_dataset.py --annotation FILE).
"""

PROTOCOLS = {
    # The common CASME II 5-class protocol (Yan et al. 2014 baseline): fear
    # and sadness have too few clips (2 and 7) and are left out.
    "5class": (("happiness", "disgust", "repression", "surprise", "others"), None),
    # MEGC 2019 composite (See et al., FG 2019): negative = disgust +
    # repression only; fear, sadness and others are not in it. Restricted to
    # the official list (`MEMBERSHIP`): 145 clips, 24 subjects.
    "3class": (labels.MEGC_3CLASS_NAMES, labels.MEGC2019_CASME2),
}
MEMBERSHIP = {"3class": labels.MEGC2019}
# Every emotion string of CASME2-coding-*.xlsx (an unknown one is a defect).
EMOTIONS = frozenset({"happiness", "disgust", "repression", "surprise", "fear",
                      "sadness", "others"})
# CASME II: no published per-sample correction is applied; its known faults
# are handled by rule: `sub16/EP01_08`'s offset past its last frame is cut
# (`OFFSET_CUT`), `sub04/EP12_01f`'s apex '/' becomes the middle frame
# (`APEX_MISSING`) and the clip is not in the MEGC 2019 list.
ERRATA: tuple[labels.Erratum, ...] = ()


def subject_name(cell) -> str | None:
  """Spreadsheet Subject (1, 1.0, '01', 'sub01') -> 'sub01'."""
  s = corpus_io.cell_str(cell)
  m = re.fullmatch(r"(?:sub)?0*(\d+)", s, re.IGNORECASE)
  return f"sub{int(m.group(1)):02d}" if m else None


class Builder(corpus.CorpusBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """CASME II micro-expression clips (onset..offset), one split per subject."""

  VERSION = corpus.VERSION
  RELEASE_NOTES = corpus.RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = corpus.make_configs(
      PROTOCOLS, variants={"raw": "dlib", "cropped": "dlib_or_center"},
      description="CASME II")
  DEFAULT_CONFIG_NAME = "5class_112"
  CORPUS = CORPUS
  TITLE = "CASME II"
  PROTOCOLS = PROTOCOLS
  MEMBERSHIP = MEMBERSHIP
  EMOTIONS = EMOTIONS
  ERRATA = ERRATA
  HOMEPAGE = "http://casme.psych.ac.cn/casme/e2"
  CITATION = """\
@article{yan2014casme2,
  title={{CASME II}: An improved spontaneous micro-expression database and the baseline evaluation},
  author={Yan, Wen-Jing and Li, Xiaobai and Wang, Su-Jing and Zhao, Guoying and Liu, Yong-Jin and Chen, Yu-Hsin and Fu, Xiaolan},
  journal={PLoS ONE}, volume={9}, number={1}, pages={e86041}, year={2014}}"""

  def _plan(self, manual: str, skips: skiplog.SkipLog) -> list[clips.ClipPlan]:
    instr = MANUAL_DOWNLOAD_INSTRUCTIONS
    xlsx = self.locate_annotation(manual, XLSX_RE)
    names = CROPPED_DIRS if self.builder_config.variant == "cropped" else RAW_DIRS
    # As unpacked: CASME2_RAW_selected/CASME2_RAW_selected/sub01, Cropped/Cropped/sub01.
    root = corpus_io.require_path(corpus_io.find_nested(manual, *names, kind="dir"),
                                  self.TITLE, f"frame folder {names[0]}/", manual,
                                  instr)
    try:
      rows = corpus_io.read_xlsx_rows(
          xlsx, ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame"])
    except ValueError as e:
      raise corpus_io.manual_dir_error(self.TITLE, str(e), instr) from e
    return self.plan_sheet_rows(rows, root, subject_name, xlsx, skips, FPS,
                                apex_column="ApexFrame")
