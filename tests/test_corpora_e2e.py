"""Fake licensed corpora -> TFDS builds -> the trainer, end to end.

The fixture corpora (`corpus_fixtures`) are built under their REGISTERED
config names (`casme2/3class_112`, ...) with `alignment='none'` (their
frames hold no face), so the trainer opens them exactly as it opens the
real corpora. Each run trains a few steps on one LOSO fold.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import tensorflow_datasets as tfds

sys.path.insert(0, os.path.dirname(__file__))
import corpus_fixtures as cf  # pylint: disable=g-import-not-at-top,wrong-import-position

from tfds_builders import casme2, casme3, casme_sq, ck_plus, samm, smic  # noqa: F401  (register)
from tfds_builders import labels, skiplog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEGC2019 = ("smic/3class_112", "casme2/3class_112", "samm/3class_112")
MAKERS = {"casme2": cf.make_casme2, "samm": cf.make_samm, "smic": cf.make_smic,
          "casme_sq": cf.make_casme_sq, "casme3": cf.make_casme3,
          "ck_plus": cf.make_ck_plus}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """data_dir holding every fixture micro corpus' `3class_112` build (+ more)."""
  data_dir = str(tmp_path_factory.mktemp("tfds_corpora"))
  for name, make in MAKERS.items():
    manual = str(tmp_path_factory.mktemp(name))
    make(manual)
    # CAS(ME)^2's fixture has one subject with 3-class micro clips, two
    # with 4-class ones: build both protocols.
    # CASME II and SAMM: also 5-class, for the fdp_official configs.
    protocols = {"casme_sq": ("3class", "4class"),
                 "casme2": ("3class", "5class"),
                 "samm": ("3class", "5class"),
                 "ck_plus": ("7class",)}.get(name, ("3class",))
    for protocol in protocols:
      b = tfds.builder(f"{name}/{protocol}_112", data_dir=data_dir,
                       file_format="array_record", alignment="none")
      b.download_and_prepare(
          file_format="array_record",
          download_config=tfds.download.DownloadConfig(manual_dir=manual))
      assert os.path.exists(os.path.join(b.data_dir, skiplog.REPORT_FILE))
  return data_dir


def _config(module: str, arg: str | None, **overrides):
  sys.path.insert(0, ROOT)
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f"configs.{module}").get_config(arg)
  c.update_from_flattened_dict(overrides)
  return c


def _tiny(datasets, data_dir, fold):
  return _config("baseline_synthetic", "tiny", **{
      "input.datasets": tuple(datasets), "input.data_dir": data_dir,
      "input.auto_build": False, "num_steps": 3, "log_every": 1,
      "checkpoint_every": 3, "protocol.eval_every": 3,
      "protocol.folds": (fold,)})


def _check(results, workdir, class_names, subject):
  assert list(results["class_names"]) == list(class_names)
  with open(os.path.join(workdir, "results.json")) as f:
    on_disk = json.load(f)
  assert on_disk["class_names"] == list(class_names)
  (fold,) = results["per_fold"]
  assert fold["subject"] == subject, fold
  assert results["n"] >= 1
  assert os.path.exists(os.path.join(workdir, "predictions.csv"))


@pytest.mark.parametrize("module,arg", [
    ("fdp_casme2", "3class,tiny"), ("fdp_samm", "3class,tiny"),
    ("fdp_smic", "tiny"), ("fdp_casme3", "3class,tiny"),
    ("fdp_casme_sq", "4class,tiny")])
def test_train_through_each_corpus_config(built, tmp_path, module, arg):
  """configs/fdp_<corpus>.py trains on its built fixture corpus, unedited."""
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  c = _config(module, arg)
  (dataset,) = c.input.datasets
  assert dataset.endswith("class_112")
  fixture = sources.load_corpus([dataset], built, auto_build=False,
                                show_progress=False)
  fold = fixture.subjects[0]
  c = _config(module, arg, **{
      "input.data_dir": built, "input.auto_build": False, "num_steps": 2,
      "log_every": 1, "checkpoint_every": 2, "protocol.folds": (fold,)})
  results = loso.train_and_evaluate(c, str(tmp_path))
  _check(results, str(tmp_path), fixture.class_names, fold)


@pytest.mark.parametrize("module,matmul_dtype", [
    ("fdp_official_casme2", "float32"), ("fdp_official_samm", "bfloat16")])
def test_official_fdp_configs_use_the_official_class_order(built, tmp_path,
                                                           module,
                                                           matmul_dtype):
  """configs/fdp_official_*.py: the released model, official label order
  (SAMM runs with bfloat16 products, the README's faster setting)."""
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  c = _config(module, "tiny")
  (dataset,) = c.input.datasets
  as_built = sources.load_corpus([dataset], built, auto_build=False,
                                 show_progress=False)
  assert c.input.class_order[0] == "surprise"
  assert tuple(c.input.class_order) != as_built.class_names
  relabelled = sources.load_corpus([dataset], built, auto_build=False,
                                   show_progress=False,
                                   class_order=c.input.class_order)
  for a, b in zip(as_built.clips, relabelled.clips):
    assert relabelled.class_names[b.label] == as_built.class_names[a.label]
  fold = as_built.subjects[0]
  c = _config(module, "tiny", **{
      "input.data_dir": built, "input.auto_build": False, "num_steps": 2,
      "log_every": 1, "checkpoint_every": 2, "protocol.folds": (fold,),
      "model.matmul_dtype": matmul_dtype,
      "model.im2col_max_pixels": 1024 if matmul_dtype == "bfloat16" else 4})
  results = loso.train_and_evaluate(c, str(tmp_path))
  _check(results, str(tmp_path), c.input.class_order, fold)


def test_ma2mi_on_ck_plus_then_miacnet_on_casme2_and_samm(built, tmp_path):
  """configs/ma2mi_ck_plus.py pretrains on the CK+ fixture (macro, labels
  unused); configs/miacnet_{casme2,samm}.py start from it (init_from)."""
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax import tasks  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  pt_dir = str(tmp_path / "ma2mi")
  c = _config("ma2mi_ck_plus", "tiny", **{
      "input.data_dir": built, "input.auto_build": False, "num_steps": 3,
      "log_every": 1, "checkpoint_every": 3})
  tasks.run(c, pt_dir)
  pretrained = os.path.join(pt_dir, "pretrained")
  assert os.path.isdir(pretrained)
  for module, dataset in (("miacnet_casme2", "casme2/5class_112"),
                          ("miacnet_samm", "samm/5class_112")):
    fixture = sources.load_corpus([dataset], built, auto_build=False,
                                  show_progress=False)
    fold = fixture.subjects[0]
    workdir = str(tmp_path / module)
    c = _config(module, "tiny", **{
        "input.data_dir": built, "input.auto_build": False, "num_steps": 2,
        "log_every": 1, "checkpoint_every": 2, "protocol.folds": (fold,),
        "init_from": pretrained})
    results = loso.train_and_evaluate(c, workdir)
    _check(results, workdir, fixture.class_names, fold)


def test_class_order_must_be_a_permutation(built):
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  with pytest.raises(sources.DatasetError, match="not a permutation"):
    sources.load_corpus(["casme2/5class_112"], built, auto_build=False,
                        show_progress=False,
                        class_order=("surprise", "happiness"))


def test_single_subject_corpus_is_a_clear_error(built, tmp_path):
  """CAS(ME)^2 3-class on the fixture: one subject, which LOSO cannot split."""
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  c = _config("fdp_casme_sq", "3class,tiny", **{
      "input.data_dir": built, "input.auto_build": False})
  with pytest.raises(sources.DatasetError, match="LOSO needs >= 2 subjects"):
    loso.train_and_evaluate(c, str(tmp_path))


def test_megc2019_composite_loso_over_all_corpora(built, tmp_path, capsys):
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  c = sources.load_corpus(list(MEGC2019), built, auto_build=False,
                          show_progress=False)
  assert c.class_names == labels.MEGC_3CLASS_NAMES
  # Subjects are namespaced: one LOSO fold per subject of every corpus
  # (clips outside the MEGC 2019 list or protocol were never written).
  assert c.subjects == sorted(["casme2/sub01", "casme2/sub02", "casme2/sub16",
                               "samm/006", "samm/007", "samm/011",
                               "smic/s1", "smic/s2", "smic/s3"])
  assert c.excluded == 0
  results = loso.train_and_evaluate(_tiny(MEGC2019, built, "smic/s2"),
                                     str(tmp_path))
  _check(results, str(tmp_path), labels.MEGC_3CLASS_NAMES, "smic/s2")
  # MEGC reports each dataset as well as the composite: results.json and
  # the printed table carry both (here one fold: smic's s2 only).
  with open(os.path.join(str(tmp_path), "results.json")) as f:
    per = json.load(f)["per_dataset"]
  assert list(per) == ["smic"] and per["smic"]["n"] == results["n"]
  assert per["smic"]["uf1"] == pytest.approx(results["uf1"])
  out = capsys.readouterr().out
  assert "per dataset" in out and "overall" in out


def test_fdp_composite_config_on_built_corpora(built, tmp_path):
  """configs/fdp_composite.py:tiny names the three real 3class_112 datasets."""
  if not os.path.exists(os.path.join(ROOT, "configs", "fdp_composite.py")):
    pytest.skip("configs/fdp_composite.py not there")
  from mer_jax.training import loso  # pylint: disable=g-import-not-at-top
  c = _config("fdp_composite", "tiny", **{
      "input.data_dir": built, "input.auto_build": False, "num_steps": 2,
      "log_every": 1, "checkpoint_every": 2, "protocol.eval_every": 2,
      "protocol.folds": ("casme2/sub01",)})
  assert tuple(c.input.datasets) == MEGC2019
  results = loso.train_and_evaluate(c, str(tmp_path))
  _check(results, str(tmp_path), labels.MEGC_3CLASS_NAMES, "casme2/sub01")
