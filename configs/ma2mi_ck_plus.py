r"""MA2MI pretraining on CK+ macro-expression sequences (labels unused), 112 px.

  python scripts/build_dataset.py ck_plus/7class_112 --manual_dir /path/to/CK+
  python scripts/main.py --config configs/ma2mi_ck_plus.py --workdir runs/ma2mi_ck_plus
  python scripts/main.py --config configs/miacnet_casme2.py --workdir runs/miac_casme2_pt \
      --config.init_from=runs/ma2mi_ck_plus/pretrained

CK+ sequences run neutral -> peak at 30 fps (onset 0, offset = last frame),
so every (t, t+k) pair lies inside the expression. Gaps: k <= 160 ms (5
frames), future m <= 100 ms (3 frames). Only the 327 labelled sequences are
read (the corpus loader drops label -1); the labels themselves are ignored.
The branches are those of configs/miacnet_casme2.py (and SAMM):
`configs/common.py:miacnet_branches` at 112 px. Not yet
run on the real corpus (licensed): step count and lr are a starting point.
`tiny` pretrains a small model on the CK+ fixture in the e2e tests and
transfers it to `miacnet_casme2:tiny`.
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg, ("7class",))
  c = common.ma2mi(("ck_plus/7class_112",), 112, predictor_width=256,
                   decoder_width=64, batch_size=32, lr=5e-4, warmup_steps=500,
                   num_steps=20000, log_every=100, latent_weight=0.5,
                   ema_momentum=0.996, image_every=1000)
  if tiny:
    common.miacnet_tiny(c)
    c.model.predictor_width = 8
    c.model.decoder_width = 8
    c.schedule.warmup_steps = 2
    c.pretrain.image_every = 0
  return c
