r"""Sanity baseline (compact 3-D CNN on frames + differences), synthetic corpus, LOSO.

  python scripts/main.py --config configs/baseline_synthetic.py --workdir runs/baseline
  python scripts/main.py --config configs/baseline_synthetic.py:tiny --workdir runs/tiny

`tiny` shrinks everything (3 subjects, few steps) for tests and a quick look.
Measured (seed 0, shared 2-core CPU, load 8-10): LOSO UF1 0.883, UAR 0.883,
acc 0.883 in 721 s.
"""

from configs import common
from mer_jax import config_lib


def get_config(arg=None):
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
  if arg == "tiny":
    common.tiny_schedule(c)
    c.input.datasets = ("synthetic_me/tiny",)
    c.input.size = 32
    c.model.widths = (8, 8)
  return c
