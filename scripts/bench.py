#!/usr/bin/env python
"""Times the jitted `fdp_official` training step (full official widths).

Usage:
  python scripts/bench.py [--batch 8] [--steps 5] [--warmup 2] [--out bench.json]

Official shapes: batch 8, T=8, 64x64 grey, the official loss (CE + 100 * DI
MSE) and Adam(lr 1e-4) with coupled L2 1e-3, train mode (BatchNorm batch
stats, stochastic depth on, as in the official first epoch). Prints a table
and writes JSON with the median step time and clips/s. Reference: the
official PyTorch step takes ~3.72 s on a quiet 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mer_jax import fdp_reference  # noqa: E402
from mer_jax.models import fdp_official  # noqa: E402

TORCH_BASELINE_S = 3.72


def _loadavg() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--out", default="bench.json")
  args = parser.parse_args(argv)

  model = fdp_official.Model()
  tx = fdp_reference.official_optimizer()
  rng = np.random.default_rng(0)
  b = args.batch
  frames = jnp.asarray(rng.uniform(-1, 1, (b, 8, 64, 64, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 5, (b,)), jnp.int32)
  di = jnp.asarray(rng.uniform(0, 1, (b, 64, 64)), jnp.float32)

  t0 = time.perf_counter()
  variables = jax.jit(lambda k: model.init(k, frames[:1], train=False))(
      jax.random.key(0))
  params, bstats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  step = jax.jit(fdp_reference.make_train_step(model, tx), donate_argnums=(0, 1, 2))
  key = jax.random.key(1)
  compiled = step.lower(params, bstats, opt_state, frames, labels, di,
                        key).compile()
  compile_s = time.perf_counter() - t0

  times, cpu = [], []
  for i in range(args.warmup + args.steps):
    key, sub = jax.random.split(key)
    w0, c0 = time.perf_counter(), time.process_time()
    params, bstats, opt_state, out = compiled(
        params, bstats, opt_state, frames, labels, di, sub)
    jax.block_until_ready((params, out["losses"]["final"]))
    w, c = time.perf_counter() - w0, time.process_time() - c0
    if i >= args.warmup:
      times.append(w)
      cpu.append(c)
  med = statistics.median(times)
  result = {
      "model": "fdp_official (full)", "n_params": int(n_params),
      "batch": b, "frames": 8, "hw": 64,
      "devices": [str(d) for d in jax.devices()],
      "backend": jax.default_backend(), "jax": jax.__version__,
      "cpu_count": os.cpu_count(), "machine": platform.processor() or
      platform.machine(),
      "compile_s": round(compile_s, 1),
      "step_s_median": round(med, 3), "step_s_min": round(min(times), 3),
      "step_s_max": round(max(times), 3),
      "cpu_over_wall_median": round(statistics.median(
          c / w for c, w in zip(cpu, times)), 2),
      "clips_per_s": round(b / med, 3),
      "torch_baseline_step_s": TORCH_BASELINE_S,
      "speedup_vs_torch": round(TORCH_BASELINE_S / med, 2),
      "loadavg_after": _loadavg(),
      "final_loss": float(out["losses"]["final"]),
  }
  print(f"{'model':<22}{'batch':>6}{'median s':>10}{'min s':>8}{'max s':>8}"
        f"{'clips/s':>9}{'vs torch':>9}")
  print(f"{'fdp_official (full)':<22}{b:>6}{med:>10.3f}{min(times):>8.3f}"
        f"{max(times):>8.3f}{b / med:>9.2f}{TORCH_BASELINE_S / med:>8.2f}x")
  print(f"compile {compile_s:.1f} s, loadavg {result['loadavg_after']}, "
        f"devices {result['devices']}")
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
