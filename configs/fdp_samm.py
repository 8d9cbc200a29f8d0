r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on SAMM, LOSO.

  python scripts/main.py --config configs/fdp_samm.py --workdir runs/fdp_samm
  python scripts/main.py --config configs/fdp_samm.py:3class --workdir runs/fdp_samm_3class

Datasets: `samm/5class_112` (anger, contempt, happiness, surprise, other;
the official code's SAMM protocol); `:3class` = MEGC (negative, positive,
surprise).

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine);
the aux-loss weights are those that worked on the synthetic corpus.
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("5class", "3class"))
  return common.fdp_real_corpus((f"samm/{protocol}_112",), num_steps=500,
                                tiny=tiny)
