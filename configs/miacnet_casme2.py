r"""MIACNet on CASME II, 5 classes, 112 px, LOSO (26 subjects).

  python scripts/build_dataset.py casme2/5class_112 --manual_dir /path/to/CASME2
  python scripts/main.py --config configs/miacnet_casme2.py --workdir runs/miac_casme2 \
      [--config.init_from=runs/ma2mi_ck_plus/pretrained]

Branch sizes follow MMNet at the paper's 14 x 14 grid
(`configs/common.py:miacnet_branches`, 112 px). Optimisation follows MMNet's
recipe (AdamW, lr 8e-4, weight decay 0.6, 74 epochs of batch 32 ~ 550 steps
on ~237 training clips), with the trainer's warmup-cosine schedule instead
of MMNet's exponential decay. Augmentation as MMNet: flip, +-3 deg
rotation, ~15/224 shift. Apex as MMNet: the annotated one
(`apex="annotated"`; `apex="detrended"` etc. are the estimated-apex
options, reported as such; `configs/common.py:miacnet`). Not yet run on
the real corpus (licensed, not available here); `tiny` (a small model on
the same dataset) trains on the CASME II fixture in the e2e tests.
"""

from configs import common


def get_config(arg=None):
  _, tiny = common.parse_arg(arg, ("5class",))
  c = common.miacnet(("casme2/5class_112",), 112, dropout=0.5,
                     weight_decay=0.6, lr=8e-4, warmup_steps=30, num_steps=550,
                     log_every=25)
  c.input.batch_size = 32
  c.input.augment.max_rotate_deg = 3.0
  c.input.augment.scale = (1.0, 1.0)
  c.input.augment.max_shift = 0.067
  return common.miacnet_tiny(c) if tiny else c
