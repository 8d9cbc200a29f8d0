r"""MIACNet on SAMM, 5 classes, 112 px, LOSO.

  python scripts/build_dataset.py samm/5class_112 --manual_dir /path/to/SAMM
  python scripts/main.py --config configs/miacnet_samm.py --workdir runs/miac_samm \
      [--config.init_from=runs/ma2mi_ck_plus/pretrained]

Same network and recipe as configs/miacnet_casme2.py (so one MA2MI checkpoint
serves both); SAMM's 5-class protocol has ~136 clips, so fewer steps
(74 epochs x ~4.1 batches of 32 ~ 300). Not yet run (licensed corpus).
"""

from configs import common
from configs import miacnet_casme2


def get_config(arg=None):
  c = miacnet_casme2.get_config(arg)
  c.input.datasets = ("samm/5class_112",)
  if not common.parse_arg(arg, ("5class",))[1]:  # `tiny` keeps its few steps
    c.num_steps = 300
  return c
