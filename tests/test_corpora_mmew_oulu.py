"""`mmew` and `oulu_casia` builders on fixtures laid out as the releases unpack,
then through their configs (FDP on MMEW, MA2MI on Oulu-CASIA / MMEW macro).

The clean fixtures hold only repairs (no defects): they are built with
`strict=True` under their REGISTERED config names, as a user would build
the real corpora, and reused by the end-to-end runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import corpus_fixtures as cf  # pylint: disable=g-import-not-at-top,wrong-import-position
import corpus_fixtures_mmew_oulu as fx  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders import corpus, corpus_io, labels, skiplog
from tfds_builders import mmew, oulu_casia  # noqa: F401  (register)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Registered config -> (manual key, which Expected).
BUILDS = {"mmew/7class_112": "mmew", "mmew/6class_112": "mmew",
          "mmew/3class_112": "mmew",
          "mmew/macro_112": "mmew_macro", "oulu_casia/6class_112": "oulu",
          "oulu_casia/3class_112": "oulu"}


def _build(name, manual, data_dir, **kwargs):
  return cf.build(name, manual, data_dir, alignment="none", **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The clean fixtures, built strict: name -> (builder, Expected), and data_dir."""
  mm = tmp_path_factory.mktemp("mmew")
  ou = tmp_path_factory.mktemp("oulu")
  micro, macro = fx.make_mmew(str(mm))
  exp = {"mmew": (mm, micro), "mmew_macro": (mm, macro),
         "oulu": (ou, fx.make_oulu_casia(str(ou)))}
  data_dir = tmp_path_factory.mktemp("tfds_mmew_oulu")
  out = {}
  for name, key in BUILDS.items():
    manual, e = exp[key]
    out[name] = (_build(name, manual, data_dir, strict=True), e)
  return out, str(data_dir), str(mm)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_strict_build_of_release_layout(built, name):
  """Nested unpack, real names and quirks; repairs reported, no defect, strict passes."""
  builds, _, mmew_manual = built
  b, exp = builds[name]
  protocol = b.builder_config.protocol
  names, _ = b.PROTOCOLS[protocol]
  assert {s: b.info.splits[s].num_examples for s in b.info.splits} == exp.splits
  with open(os.path.join(b.data_dir, skiplog.REPORT_FILE)) as f:
    report = json.load(f)
  assert report["defects_total"] == 0 and report["skipped"] == {}
  assert {r: len(v) for r, v in report["repaired"].items()} == exp.notes
  assert report["excluded_total"] == 0
  assert report["per_class"] == exp.per_class(protocol, names)
  assert report["rows_read"] == len(exp.clips)
  if name.startswith("mmew/") and protocol != "macro":   # the sheet and its sha256
    sheet = os.path.join(mmew_manual, "MMEW_Final", "MMEW_Micro_Exp.xlsx")
    with open(sheet, "rb") as f:
      sha = hashlib.sha256(f.read()).hexdigest()
    assert report["annotation"] == {"file": os.path.join(
        "MMEW_Final", "MMEW_Micro_Exp.xlsx"), "sha256": sha}
    assert b.info.metadata["annotation_sha256"] == sha
  else:
    assert report["annotation"] is None
  recs = cf.read_all(b)
  assert set(recs) == set(exp.clips)
  for sid, clip in exp.clips.items():
    ex = recs[sid]
    frames = np.stack(ex["frames"])
    got = [cf.number_from_colour(f) for f in frames]
    assert np.abs(np.array(got) - np.array(clip.numbers)).max() <= 2, (sid, got)
    assert (ex["onset"], ex["apex"], ex["offset"]) == (
        0, clip.apex, len(clip.numbers) - 1), sid
    assert ex["label"] == clip.labels[protocol], sid
    assert ex["emotion"].decode() == clip.emotion
    assert ex["action_units"].decode() == clip.action_units
    assert bool(ex["apex_annotated"]) == clip.apex_annotated, sid
    assert ex["fps"] == (90.0 if sid.startswith("mmew") else 25.0)


@pytest.mark.parametrize("maker,name,variant", [
    ("mmew", "mmew", "7class"), ("oulu", "oulu_casia", "6class")])
def test_defects_are_counted_or_stop_a_strict_build(tmp_path, maker, name, variant):
  manual = tmp_path / "m"
  if maker == "mmew":
    exp, _ = fx.make_mmew(str(manual), defects=True)
  else:
    exp = fx.make_oulu_casia(str(manual), defects=True)
  cfg = corpus.CorpusConfig(protocol=variant, size=24, alignment="none")
  with pytest.raises(skiplog.CorpusDefectError, match="Strict build stopped"):
    cf.build(name, manual, tmp_path / "s", config=cfg, strict=True)
  b = cf.build(name, manual, tmp_path / "d", config=cfg)
  assert b.report["defects_total"] == sum(exp.skips.values())
  assert {r: len(v) for r, v in b.report["skipped"].items()} == exp.skips
  assert {r: len(v) for r, v in b.report["repaired"].items()} == exp.notes
  assert b.report["samples_written"] == len(exp.clips)


def test_mmew_subject_level_layout_and_two_sheet_versions(tmp_path):
  """The authors' `<subject>/<emotion>/<clip>` layout; two sheets need annotation=."""
  manual = tmp_path / "m"
  exp, _ = fx.make_mmew(str(manual), subject_level=True, two_versions=True)
  with pytest.raises(corpus_io.ManualDirError, match="2 annotation files") as e:
    _build("mmew/7class_112", manual, tmp_path / "d0")
  assert "MMEW_Micro_Exp_v2.xlsx" in str(e.value) and "--annotation" in str(e.value)
  v2 = os.path.join("MMEW_Final", "MMEW_Micro_Exp_v2.xlsx")
  cfg = corpus.CorpusConfig(protocol="7class", size=24, alignment="none")
  b = cf.build("mmew", manual, tmp_path / "d1", config=cfg, annotation=v2,
               strict=True)
  assert b.report["annotation"]["file"] == v2
  assert b.report["per_split"] == exp.splits


def test_oulu_casia_camera_and_lighting_configs(tmp_path):
  """`*_ni_strong` reads OriginalImg/NI/Strong; a missing lighting is a clear error."""
  manual = tmp_path / "m"
  fx.make_oulu_casia(str(manual))
  names = {c.name for c in oulu_casia.Builder.BUILDER_CONFIGS}
  assert {"6class_112", "6class_112_ni_strong", "6class_224_vl_dark",
          "3class_112_ni_weak"} <= names
  b = _build("oulu_casia/6class_112_ni_strong", manual, tmp_path / "d")
  assert b.report["per_split"] == {"P001": 1}
  with pytest.raises(corpus_io.ManualDirError, match="NI/Dark"):
    _build("oulu_casia/6class_112_ni_dark", manual, tmp_path / "d")


@pytest.mark.parametrize("name,layout", [
    ("mmew", "Micro_Expression"), ("oulu_casia", "OriginalImg/VL/Strong")])
def test_missing_manual_dir_names_layout(tmp_path, name, layout):
  (tmp_path / "empty").mkdir()
  with pytest.raises(corpus_io.ManualDirError) as e:
    _build(f"{name}/6class_112", tmp_path / "empty", tmp_path / "d")
  assert layout in str(e.value)


def _config(module, arg, **overrides):
  sys.path.insert(0, ROOT)
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f"configs.{module}").get_config(arg)
  c.update_from_flattened_dict(overrides)
  return c


def test_fdp_mmew_tiny_trains_on_the_built_fixture(built, tmp_path):
  """configs/fdp_mmew.py, unedited but for the data dir and one fold.

  `:3class` (3 classes, like the other corpora's tiny e2e runs in
  test_corpora_e2e, so the suite compiles the FDP steps once).
  """
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  _, data_dir, _ = built
  assert _config("fdp_mmew", "tiny").input.datasets == ("mmew/7class_112",)
  c = _config("fdp_mmew", "3class,tiny", **{
      "input.data_dir": data_dir, "input.auto_build": False, "num_steps": 2,
      "log_every": 1, "checkpoint_every": 2, "protocol.folds": ("mmew/S01",)})
  assert tuple(c.input.datasets) == ("mmew/3class_112",)
  results = loso.train_and_evaluate(c, str(tmp_path))
  assert list(results["class_names"]) == list(labels.MEGC_3CLASS_NAMES)
  (fold,) = results["per_fold"]
  # S01's happiness and surprise clips; its 'others' clip is outside 3class.
  assert fold["subject"] == "mmew/S01" and results["n"] == 2
  assert os.path.exists(tmp_path / "results.json")


def test_ma2mi_pretrains_on_oulu_casia_and_refuses_mmew_images(built, tmp_path):
  """MA2MI reads oulu_casia sequences; MMEW's macro images give a clear error."""
  from mer_jax import tasks  # pylint: disable=g-import-not-at-top
  _, data_dir, _ = built
  common = {"input.data_dir": data_dir, "input.auto_build": False,
            "num_steps": 2, "log_every": 1, "checkpoint_every": 2}
  c = _config("ma2mi_oulu_casia", "tiny", **common)
  assert tuple(c.input.datasets) == ("oulu_casia/6class_112",)
  tasks.run(c, str(tmp_path / "oulu"))
  assert os.path.isdir(tmp_path / "oulu" / "pretrained")
  c = _config("ma2mi_mmew", "tiny", **common)
  assert tuple(c.input.datasets) == ("mmew/macro_112",)
  with pytest.raises(ValueError, match="fewer than 3 frames.*one image per sample"):
    tasks.run(c, str(tmp_path / "mmew"))
