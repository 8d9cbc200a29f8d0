"""scripts/bench.py runs end to end (tiny shapes) and writes the JSON schema.

Speed is never asserted here: the numbers are the benchmark's output.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_writes_table_and_json(data_dir, tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from mer_jax.data import sources  # pylint: disable=g-import-not-at-top
  sources.load_corpus(["synthetic_me/tiny"], data_dir, show_progress=False)
  out = str(tmp_path / "bench.json")
  env = dict(os.environ, TFDS_DATA_DIR=data_dir, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1",
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir)
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "scripts", "bench.py"),
       "--config=configs/baseline_synthetic.py:tiny",
       "--config.input.datasets=('synthetic_me/tiny',)",
       "--fdp_width=small", "--steps=1", "--warmup=1", "--folds=1,2",
       f"--json={out}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    r = json.load(f)
  step = r["fdp_train_step"]
  assert step["jax_clips_per_s"] > 0 and step["step_gflop"] > 0
  assert step["fp32_matmul_gflops"] > 0
  b16 = step["bfloat16"]
  assert b16["jax_clips_per_s"] > 0
  assert b16["jax_model_kwargs"]["matmul_dtype"] == "bfloat16"
  try:
    import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    assert step["torch_clips_per_s"] > 0 and step["speedup"] > 0
    assert b16["torch_clips_per_s"] > 0 and b16["speedup_vs_torch_bf16"] > 0
  except ImportError:
    assert step["torch_clips_per_s"] is None and "bench" in step["torch_skipped"]
    assert b16["torch_clips_per_s"] is None
  assert [row["k"] for row in r["fold_parallel"]] == [1, 2]
  assert all(row["speedup"] > 0 for row in r["fold_parallel"])
  assert r["input_pipeline"]["clips_per_s"] > 0
  assert r["memory"]["peak_rss_mb"] > 0
  assert "FDP train step" in proc.stdout and "fold-parallel" in proc.stdout
  assert "jax bf16" in proc.stdout
