"""FDP, code-faithful port of the official PyTorch model (`fdp_official`).

- `model.py`: the Flax model (`Model`, `aux_losses`, `resolve_kwargs`,
  `FULL_CONFIG`, `SMALL_CONFIG`, `FULL_NUM_PARAMS`); see its docstring.
- `torch_layers.py`: PyTorch-compatible layers (Conv2d, Linear, BatchNorm,
  DropPath, pools, bfloat16 `mixed_conv`).
- `convert.py`: torch state_dict <-> Flax variables (`load`, `to_state_dict`,
  `infer_config`).
- `reference.py`: the checks against the official reference vectors
  (`scripts/check_fdp_reference.py`, tests); not imported here.
"""

from mer_jax.models.fdp_official.convert import infer_config
from mer_jax.models.fdp_official.convert import load
from mer_jax.models.fdp_official.convert import state_dict_keys
from mer_jax.models.fdp_official.convert import to_state_dict
from mer_jax.models.fdp_official.convert import to_torch_name
from mer_jax.models.fdp_official.convert import variable_shapes
from mer_jax.models.fdp_official.model import FULL_CONFIG
from mer_jax.models.fdp_official.model import FULL_NUM_PARAMS
from mer_jax.models.fdp_official.model import Model
from mer_jax.models.fdp_official.model import SMALL_CONFIG
from mer_jax.models.fdp_official.model import aux_losses
from mer_jax.models.fdp_official.model import resolve_kwargs
from mer_jax.models.fdp_official.model import preview
