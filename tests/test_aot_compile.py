"""scripts/aot_compile.py: tiny configs compile for a real TPU topology.

Needs the TPU compiler (`pip install -e '.[tpu-aot]'`, libtpu); skipped
without it. Nothing runs on a TPU: libtpu compiles for a topology
description, and the reports come from XLA's memory and cost analyses.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="libtpu is not installed: pip install -e '.[tpu-aot]' to compile "
           "for TPU topologies without a TPU")


@pytest.fixture(scope="module")
def aot():
  sys.path.insert(0, os.path.join(ROOT, "scripts"))
  import aot_compile  # pylint: disable=g-import-not-at-top
  return aot_compile


def _config(name, **overrides):
  import importlib  # pylint: disable=g-import-not-at-top
  c = importlib.import_module(f"configs.{name}").get_config("tiny")
  for key, value in overrides.items():
    node = c
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  return c


@pytest.mark.parametrize("name", ["fdp_synthetic", "fdp_official_samm"])
def test_fsdp_shards_state_and_reports(aot, name):
  # fsdp_min_size lowered so that the tiny model's kernels are sharded too.
  c = _config(name, **{"mesh.fsdp": 2, "mesh.fsdp_min_size": 256})
  r = aot.compile_config(c, "v5e:2x2", largest=50)
  assert r["mesh"] == {"folds": 1, "data": 2, "fsdp": 2}
  assert r["device"]["devices"] == 4 and r["device"]["chip"] == "v5e"
  train, evals = r["steps"][:2]
  for s in (train, evals):
    assert s["argument_bytes"] > 0 and s["flops"] > 0 and s["bytes_accessed"] > 0
    assert 0 < s["roofline_s"] and s["fits"]
  assert train["flops"] > evals["flops"] * (c.input.batch_size
                                            / c.input.eval_batch_size)
  sharded = [leaf for leaf in r["largest_leaves"] if "fsdp" in leaf["spec"]]
  assert sharded, r["largest_leaves"]
  leaf = sharded[0]
  full = 4
  for d in leaf["shape"]:
    full *= d
  assert leaf["bytes_per_device"] * 2 == full  # float32, split in two
  if name == "fdp_official_samm":  # classes from the SAMM builder, no data
    assert r["loso"]["folds"] == aot.CORPORA["samm"][0]


def test_fold_parallel_costs_per_device(aot, tmp_path):
  c = _config("fdp_official_samm", **{"protocol.parallel_folds": 4,
                                      "mesh.folds": 4})
  cache = str(tmp_path / "programs")
  r = aot.compile_config(c, "v5e:2x2", single_fold_step=True, cache=cache)
  assert r["mesh"] == {"folds": 4, "data": 1, "fsdp": 1}
  train, _, folds = r["steps"]
  assert folds["step"] == "train x4 folds" and folds["clips"] == 4 * train["clips"]
  # Per-device costs. On this (folds=4, data=1) mesh the single-fold step
  # is replicated over the fold axis (each device runs the whole batch), and
  # the 4-fold step puts one whole fold on each device: about the same
  # per-device work for 4x the folds.
  assert 0.7 < folds["flops"] / train["flops"] < 1.5
  lo = r["loso"]
  assert lo["parallel_folds"] == 4 and 0 < lo["fold_parallel_s"]
  assert lo["sequential_s"] is None  # from the data-parallel report instead
  # By default only the steps a fold-parallel run repeats are compiled.
  # The same programs again: analyses reused (see also the test below).
  r = aot.compile_config(c, "v5e:2x2", cache=cache)
  assert [s["step"] for s in r["steps"]] == ["eval", "train x4 folds"]
  assert r["steps"][1]["flops"] == folds["flops"]
  assert r["steps"][1]["reused_from"] is not None


def test_divisibility_errors(aot):
  with pytest.raises(aot.AotError, match="not divisible by the 4 devices"):
    aot.compile_config(_config("fdp_synthetic", **{"input.batch_size": 6}),
                       "v5e:2x2", num_classes=5)
  with pytest.raises(aot.AotError, match="must divide the 4 devices"):
    aot.compile_config(_config("fdp_synthetic", **{"mesh.fsdp": 3}),
                       "v5e:2x2", num_classes=5)


def test_cli_error_exit(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "aot_compile.py"),
       "--config=configs/fdp_synthetic.py:tiny", "--topology=v4:2x2x1",
       "--config.input.batch_size=12", "--num_classes=5"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "error: config.input.batch_size=12 is not divisible by the 8" in proc.stderr


def test_ma2mi_pretraining_compiles_sharded(aot):
  # The pretraining task's own step (tasks/ma2mi_pretrain.build_step), over
  # every device with FSDP; fold-parallel LOSO is refused (no folds).
  c = _config("ma2mi_synthetic", **{"mesh.fsdp": 2, "mesh.fsdp_min_size": 256})
  r = aot.compile_config(c, "v5e:2x2")
  assert r["task"] == "ma2mi_pretrain" and r["mesh"] == {"folds": 1, "data": 2, "fsdp": 2}
  (step,) = r["steps"]
  assert step["step"] == "pretrain" and step["flops"] > 0 and step["fits"]
  assert any("fsdp" in leaf["spec"] for leaf in r["largest_leaves"])
  assert r["pretrain_s"] == pytest.approx(c.num_steps * step["roofline_s"])
  with pytest.raises(aot.AotError, match="fold-parallel LOSO does not apply"):
    aot.compile_config(_config("ma2mi_synthetic", **{
        "protocol.parallel_folds": 4, "mesh.folds": 4}), "v5e:2x2")


def test_identical_programs_reuse_analyses(aot, tmp_path):
  # fdp_samm and fdp_casme2 differ only in data: same model, 5 classes, same
  # shapes, so the same lowered program; fdp_smic has 3 classes.
  cache = str(tmp_path / "programs")
  first = aot.compile_config(_config("fdp_samm"), "v5e:2x2", cache=cache,
                             source="fdp_samm")
  same = aot.compile_config(_config("fdp_casme2"), "v5e:2x2", cache=cache,
                            source="fdp_casme2")
  other = aot.compile_config(_config("fdp_smic"), "v5e:2x2", cache=cache,
                             source="fdp_smic")
  for a, b in zip(first["steps"], same["steps"]):
    assert a["reused_from"] is None and b["reused_from"] == "fdp_samm"
    assert a["program_sha256"] == b["program_sha256"]
    for key in ("total_bytes", "flops", "bytes_accessed", "roofline_s"):
      assert a[key] == b[key]
  for a, c in zip(first["steps"], other["steps"]):
    assert c["reused_from"] is None
    assert a["program_sha256"] != c["program_sha256"]
  # Another topology is another program, even for the same config.
  v4 = aot.compile_config(_config("fdp_samm"), "v4:2x2x1", cache=cache,
                          source="fdp_samm v4")
  assert all(s["reused_from"] is None for s in v4["steps"])
