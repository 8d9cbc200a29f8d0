r"""Sanity baseline (compact 3-D CNN on frames + differences), synthetic corpus, LOSO.

  python scripts/main.py --config configs/baseline_synthetic.py --workdir runs/baseline
  python scripts/main.py --config configs/baseline_synthetic.py:tiny --workdir runs/tiny

`tiny` shrinks everything (3 subjects, few steps) for tests and a quick look.
Measured on synthetic_me/s64 2.0.0 (seed 0; 2-core AMD EPYC with AVX-512,
shared at load 12-25, 2026-12-03): LOSO UF1 0.722, UAR 0.723, acc 0.723 in
1425 s (1432 s wall, 507 s user CPU); per fold 0.68 0.82 0.79 0.77 0.38 0.93
0.78 0.73 0.68 0.52 (sub01 ... sub10). (On 1.x: UF1 0.883.)
"""

from configs import common
from mer_jax import config_lib


def get_config(arg=None):
  _, tiny = common.parse_arg(arg)
  c = config_lib.base_config()
  c.input.datasets = ("synthetic_me/s64",)
  c.input.num_frames = 8
  c.input.size = 64
  c.model_name = "baseline3d"
  c.model.patch = 4
  c.model.widths = (24, 32)
  c.model.dropout = 0.2
  c.schedule.lr = 2e-3
  c.num_steps = 300
  if tiny:
    common.tiny_schedule(c)
    c.input.datasets = ("synthetic_me/tiny",)
    c.input.size = 32
    c.model.widths = (8, 8)
  return c
