r"""FDP (paper architecture, `mer_jax/models/fdp.py`) on CAS(ME)^2, LOSO.

  python scripts/main.py --config configs/fdp_casme_sq.py --workdir runs/fdp_casme_sq
  python scripts/main.py --config configs/fdp_casme_sq.py:4class --workdir runs/fdp_casme_sq_4class

Datasets: `casme_sq/3class_112` (negative, positive, surprise); `:4class`
adds others. The paper's CAS(ME)^2 protocol is unknown (see FDP_SPEC.md
1.2).

Input, model and fixed schedule: `configs/common.py:fdp_real_corpus`
(the model after the last step is reported; no selection on the test subject).

Not measured here (the licensed corpus is not available on this machine);
the aux-loss weights are those that worked on the synthetic corpus.
`tiny` shrinks the model (for tests; still names the real corpus).
"""

from configs import common


def get_config(arg=None):
  protocol, tiny = common.parse_arg(arg, ("3class", "4class"))
  return common.fdp_real_corpus((f"casme_sq/{protocol}_112",), num_steps=500,
                                tiny=tiny)
