"""Results do not depend on the device count; two processes on 127.0.0.1 work."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "baseline_synthetic.py")
FOLD = "synthetic_me/sub01"


def _fold_result(workdir):
  with open(os.path.join(workdir, "folds", "synthetic_me__sub01", "result.json")) as f:
    return json.load(f)


def _tiny(data_dir, **kw):
  sys.path.insert(0, ROOT)
  from configs import baseline_synthetic  # pylint: disable=g-import-not-at-top
  c = baseline_synthetic.get_config("tiny")
  c.input.data_dir = data_dir
  c.num_steps = 8
  c.protocol.folds = (FOLD,)
  for k, v in kw.items():
    a, b = k.split(".")
    c[a][b] = v
  return c


def test_one_and_eight_devices_agree(data_dir, tmp_path):
  import jax
  from mer_jax.training import loso
  assert jax.device_count() == 8
  r1 = loso.train_and_evaluate(_tiny(data_dir, **{"mesh.data": 1}), str(tmp_path / "d1"))
  r8 = loso.train_and_evaluate(_tiny(data_dir, **{"mesh.data": 8}), str(tmp_path / "d8"))
  p1 = np.array(_fold_result(str(tmp_path / "d1"))["probs"])
  p8 = np.array(_fold_result(str(tmp_path / "d8"))["probs"])
  np.testing.assert_allclose(p1, p8, atol=2e-4)
  assert r1["per_fold"][0]["n"] == r8["per_fold"][0]["n"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(data_dir, devices):
  import jax  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir)
  return env


def _cmd(workdir, *extra):
  return [sys.executable, os.path.join(ROOT, "scripts", "main.py"),
          f"--config={CONFIG}:tiny", f"--workdir={workdir}",
          "--config.num_steps=8", f"--config.protocol.folds=('{FOLD}',)", *extra]


def test_two_processes_match_one_process(data_dir, tmp_path):
  # Build the dataset once here so the two processes only read it.
  from mer_jax.data import sources
  sources.load_corpus(["synthetic_me/tiny"], data_dir, show_progress=False)

  single = subprocess.run(_cmd(str(tmp_path / "single")), env=_env(data_dir, 4),
                          cwd=ROOT, capture_output=True, timeout=600)
  assert single.returncode == 0, single.stderr.decode()[-3000:]

  port = _free_port()
  workdir = str(tmp_path / "multi")
  procs = [subprocess.Popen(
      _cmd(workdir, f"--coordinator_address=127.0.0.1:{port}",
           "--num_processes=2", f"--process_id={pid}"),
      env=_env(data_dir, 2), cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT) for pid in range(2)]
  outs = [p.communicate(timeout=600)[0].decode() for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  a = _fold_result(str(tmp_path / "single"))
  b = _fold_result(workdir)
  assert a["sample_ids"] == b["sample_ids"]
  np.testing.assert_allclose(np.array(a["probs"]), np.array(b["probs"]), atol=2e-4)
  with open(os.path.join(workdir, "results.json")) as f:
    assert json.load(f)["n"] == len(a["labels"])
  # Process 0 held the workdir lock; process 1 checked it held their run's token.
  with open(os.path.join(workdir, ".lock")) as f:
    holder = json.load(f)
  assert holder["pid"] == procs[0].pid and holder["run_token"]


def test_fsdp_matches_data_parallel(data_dir, tmp_path):
  from mer_jax.training import loso
  dp = _tiny(data_dir, **{"mesh.fsdp": 1})
  fsdp = _tiny(data_dir, **{"mesh.fsdp": 4, "mesh.fsdp_min_size": 64})
  loso.train_and_evaluate(dp, str(tmp_path / "dp"))
  loso.train_and_evaluate(fsdp, str(tmp_path / "fsdp"))
  np.testing.assert_allclose(np.array(_fold_result(str(tmp_path / "dp"))["probs"]),
                             np.array(_fold_result(str(tmp_path / "fsdp"))["probs"]),
                             atol=2e-4)


def test_fsdp_rule_splits_large_leaves_only():
  import jax
  from mer_jax.training import sharding
  c = _tiny("/unused", **{"mesh.fsdp": 4})
  sharder = sharding.Sharder(sharding.make_mesh(c), fsdp_min_size=1000)
  big = jax.ShapeDtypeStruct((6, 400), np.float32)
  small = jax.ShapeDtypeStruct((4, 4), np.float32)
  assert sharder.leaf(big).spec == jax.sharding.PartitionSpec(None, "fsdp")
  assert sharder.leaf(small).spec == jax.sharding.PartitionSpec()


def _all_probs(workdir):
  out = {}
  for d in sorted(os.listdir(os.path.join(workdir, "folds"))):
    with open(os.path.join(workdir, "folds", d, "result.json")) as f:
      out[d] = np.array(json.load(f)["probs"])
  return out


def test_fold_parallel_matches_sequential(data_dir, tmp_path):
  from mer_jax.training import loso

  def cfg(**kw):
    c = _tiny(data_dir, **kw)
    c.protocol.folds = ()
    return c

  loso.train_and_evaluate(cfg(), str(tmp_path / "seq"))
  # 3 folds vmapped in one program; then 2 + 1 with the fold axis split
  # over 2 devices.
  loso.train_and_evaluate(cfg(**{"protocol.parallel_folds": 3}), str(tmp_path / "k3"))
  loso.train_and_evaluate(cfg(**{"protocol.parallel_folds": 2, "mesh.folds": 2}),
                           str(tmp_path / "k2"))
  # 3 folds in a group of 4 split over 4 devices: padded with a copy.
  loso.train_and_evaluate(cfg(**{"protocol.parallel_folds": 4, "mesh.folds": 4}),
                           str(tmp_path / "k4"))
  seq = _all_probs(str(tmp_path / "seq"))
  assert len(seq) == 3
  for run in ("k3", "k2", "k4"):
    par = _all_probs(str(tmp_path / run))
    assert par.keys() == seq.keys()
    for k in seq:
      np.testing.assert_allclose(par[k], seq[k], atol=2e-4, err_msg=f"{run} {k}")


def test_parallel_folds_must_split_over_mesh_folds(data_dir, tmp_path):
  from mer_jax.training import loso
  c = _tiny(data_dir, **{"protocol.parallel_folds": 3, "mesh.folds": 2})
  with pytest.raises(ValueError, match="multiple of config.mesh.folds"):
    loso.train_and_evaluate(c, str(tmp_path))
