r"""FDP (paper architecture, `mer_jax/models/fdp.py`), synthetic corpus, LOSO.

  python scripts/main.py --config configs/fdp_synthetic.py --workdir runs/fdp_synthetic
  python scripts/main.py --config configs/fdp_synthetic.py:tiny --workdir runs/tiny

Sized for 2 CPU cores: 8x8-pixel patches (8x8 tokens per frame at 64 px),
widths 32/48/64, one local block per stage and E-MHSA global blocks in the
last two stages, a small dynamic-image decoder. Fixed schedule (300 steps,
the model after the last step is reported; no selection on test labels).

Ranking and pooling as the paper describes them (mer_jax/models/fdp.py,
choices 3 and 4): order-aware temporal pooling (approximate rank pooling
coefficients x rank scores) and a chronological ranking loss on every pair
of consecutive frames, without key frames (no annotated apex). Nothing here
was chosen on a test fold's score.

Measured on synthetic_me/s64 2.0.0 (2-core AMD EPYC with AVX-512, shared
at load 15-25, 2026-12-03), seed 0: UF1 0.833, UAR 0.833, accuracy 0.833
(n=300), 2005 s of training and testing. Per fold UF1: sub01 0.84, sub02
0.83, sub03 0.85, sub04 0.93, sub05 0.50, sub06 0.90, sub07 1.00, sub08
0.93, sub09 0.90, sub10 0.57 (sub05 and sub10 are the two subjects whose
real person is nowhere in training). Seed 2: UF1 0.843, UAR 0.843,
accuracy 0.843, 1408 s; per fold 0.87 0.73 0.85 0.93 0.46 0.90 1.00 1.00
1.00 0.61 (sub01 ... sub10). Seed 1 (stopped after fold sub01, resumed;
546 s for the other nine folds): UF1 0.824, UAR 0.823, accuracy 0.823; per
fold 0.90 0.78 0.73 0.93 0.53 0.90 1.00 0.97 0.87 0.53. Mean over seeds
0/1/2: UF1 0.833 +- 0.010 (sample std), below the issue's 0.85 target. The earlier 0.936 +- 0.011 (softmax
pooling, apex ranking, pre-augmentation targets, synthetic_me 1.x) does not
describe this config.

Variants:
`official_width`: the frame encoder at the official code's width and depth
(stem to a 16 x 16 map, stages 96/192/384/768 wide with 3/4/10/3 local
blocks, as the official code instantiates: no global blocks), grey 64 px as
the official input; checked with jax.eval_shape (tests/test_fdp.py), not
trained here (a 2-core CPU cannot). Parameter counts (5 classes):
  default        192,602 in all (frame encoder 136,416)
  official_width  26,528,842 (frame encoder 26,064,288)
  official FDP    85,304,206 (frame encoder 54,952,448, SegNet 29,446,465)
(why the official-width encoder is smaller, and every departure in optimiser,
schedule and losses: mer_jax/models/fdp.py, module docstring).
`apex_ranking`: apex-supervised ranking (scores rise to the annotated apex
and fall after it; uses key frames, unlike the paper), an option to report
under its own name, not the FDP setting.
`tiny` shrinks everything (synthetic_me/tiny, 32 px, few steps) for tests.
"""

from configs import common

# Sized for 2 CPU cores (the docstring); sr_ratios, head_pool: `common.fdp_model`.
MODEL = dict(patch=8, widths=(32, 48, 64), depths=(1, 1, 1),
             global_blocks=(0, 1, 1), head_dim=16, mlp_ratio=2.0, drop_path=0.0,
             rank_dim=32, rank_hidden=32, head_width=64, dropout=0.2,
             decoder_widths=(32, 16, 8))
# The official frame encoder's widths and depths (FDP_SPEC 2.1); the official
# code builds no global blocks. Used grey at 64 px (the official stem: 16 x 16).
OFFICIAL_WIDTH = dict(widths=(96, 192, 384, 768), depths=(3, 4, 10, 3),
                      global_blocks=(0, 0, 0, 0), sr_ratios=(8, 4, 2, 1),
                      head_dim=8, dropout=MODEL["dropout"])


def get_config(arg=None):
  variant, tiny = common.parse_arg(arg, ("", "official_width", "apex_ranking"))
  c = common.fdp(("synthetic_me/s64",), common.fdp_model(**MODEL), lr=2e-3,
                 num_steps=300)
  if variant == "official_width":
    c.input.channels = 1
    c.model = common.fdp_model(**OFFICIAL_WIDTH)
  if variant == "apex_ranking":  # uses key frames: report it under this name
    c.aux_loss.rank_use_apex = True
    c.aux_loss.rank_window = "to_peak"
  if tiny:
    c.input.datasets = ("synthetic_me/tiny",)
    c.input.size = 32
    common.fdp_tiny(c)
  return c
