r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CASME II, LOSO.

  python scripts/main.py --config configs/fdp_casme2.py --workdir runs/fdp_casme2
  python scripts/main.py --config configs/fdp_casme2.py:3class --workdir runs/fdp_casme2_3class

Datasets: `casme2/5class_112` (happiness, disgust, repression, surprise,
others; the official code's CASME II protocol); `:3class` = MEGC (negative,
positive, surprise).

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine);
the aux-loss weights are those that worked on the synthetic corpus.
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("5class", "3class"))
  return common.fdp_real_corpus((f"casme2/{protocol}_112",), num_steps=500,
                                tiny=tiny)
