r"""MIACNet (position/action two-branch network), synthetic corpus, LOSO.

  python scripts/main.py --config configs/miacnet_synthetic.py --workdir runs/miac
  # after MA2MI pretraining (configs/ma2mi_synthetic.py):
  python scripts/main.py --config configs/miacnet_synthetic.py --workdir runs/miac_pt \
      --config.init_from=runs/ma2mi/pretrained
  python scripts/main.py --config configs/miacnet_synthetic.py:tiny --workdir runs/t

The branches (`configs/common.py:miacnet_branches` at 64 px) are those of
configs/ma2mi_synthetic.py, so pretrained parameters match by path and shape.
`tiny` (3 subjects, 32 px, a few steps) is for tests.

Apex: annotated (MMNet's protocol; see mer_jax/models/miacnet.py).
Measured on synthetic_me/s64 2.0.0 (10-fold LOSO, 150 steps per fold, seed
0; 2-core AMD EPYC with AVX-512, shared at load 15-25, 2026-12-03):
  from scratch:                           UF1 0.774, UAR 0.777, acc 0.777
                                          (1048 s wall, 209 s user CPU)
  init_from ma2mi_synthetic (seed 0,      UF1 0.933, UAR 0.933, acc 0.933
    600 steps on synthetic_macro/s64):    (757 s wall, 209 s user CPU)
  Seeds 1 and 2: not measured (their MA2MI pretrainings are done).
The pretraining data (synthetic_macro) shares with the test subjects the
renderer and its nuisances and one real person (the Pexels woman behind 8
of the 10 subjects, other frames and geometry); not its identities, crops
or action units. Earlier numbers (apex rule "middle", chosen on test fold
sub01 and withdrawn; synthetic_me 1.x; macro clips on the test faces):
0.824 +- 0.025 from scratch, 0.981 +- 0.007 pretrained; they do not
describe this config.
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg)
  c = common.miacnet(("synthetic_me/s64",), 64, dropout=0.2,
                     weight_decay=0.05, lr=3e-3, warmup_steps=20, num_steps=150,
                     log_every=50)
  if tiny:
    common.miacnet_tiny(c)
    c.input.datasets = ("synthetic_me/tiny",)
  return c
