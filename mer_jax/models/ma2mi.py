"""MA2MI pretraining model: future-frame prediction from position + action.

MA2MI (Li, Niu, Zhao, arXiv 2405.16451) pretrains on macro-expression videos,
without labels, "by reconstructing future frames". The paper's method section
could not be read (the team's MA2MI_NOTES.md); this is the notes' proposal A:

  position branch <- I[t]           (appearance / where the face parts are)
  action branch   <- I[t+k] - I[t]  (a small, recent facial action)
  predictor + light decoder -> I[t+k+m] (a frame further in the future)

The two branches are MIACNet's own modules (`miacnet.PositionBranch`,
`miacnet.ActionBranch`) under the same names (`position_branch`,
`action_branch`) and the same keyword arguments, so their parameters transfer
to `mer_jax.models.miacnet.Model` by path. The predictor and decoder are
discarded after pretraining.

Choices not fixed by the paper (documented here):
  * The decoder predicts the change `I[t+k+m] - I[t]`, added to I[t] to make
    the frame: re-painting the face from a 14 x 14 (8 x 8 at 64 px) grid
    would make the loss all about appearance; the residual makes it about
    the motion, which is what must transfer. Its last convolution starts at
    zero, so the initial prediction is "no change" (normalised loss 1).
  * Predictor: the two maps concatenated, a 1x1 projection and two 3x3 convs
    with a residual connection, at the branch grid (no attention: the grid is
    small and the position branch already mixes globally).
  * Decoder: `log2(H / grid)` steps of (nearest x2 upsampling, 3x3 conv,
    GELU), then a 3x3 conv to the image channels. Nearest + conv instead of a
    transposed conv (checkerboard artefacts; slow backward pass on XLA:CPU).
  * Latent target (option, the "latent-space reconstruction" of third-party
    summaries): `latent` is the predictor's map projected to the action width;
    the task compares it with an EMA copy of the action branch applied to
    I[t+k+m] - I[t] (see mer_jax/tasks/ma2mi_pretrain.py).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from mer_jax.models import miacnet

# A pretraining model: built and trained by mer_jax/tasks/ma2mi_pretrain.py
# (`models.get_model("ma2mi", task="ma2mi_pretrain", **config.model)`), not
# by the MER trainer; see the contract in mer_jax/models/__init__.py.
TASK = "ma2mi_pretrain"


class Model(miacnet.Branches):
  """`(frame_t [B, H, W, C], diff [B, H, W, C]) -> (residual [B, H, W, C], aux)`.

  aux: `action`, `position` `[B, g, g, D]`, `latent` `[B, g, g, D]`.
  The branch attributes are `miacnet.Branches` (shared with `miacnet.Model`).
  """
  predictor_width: int = 64
  decoder_width: int = 32

  @nn.compact
  def __call__(self, frame_t: jnp.ndarray, diff: jnp.ndarray, *, train: bool):
    b, h, w, c = frame_t.shape
    a, _ = self.action_branch_module()(diff, train=train)
    g = a.shape[1]
    p = self.position_branch_module(g)(frame_t)
    z = nn.Dense(self.predictor_width, name="predictor_in")(
        jnp.concatenate([a, p], axis=-1))
    y = nn.gelu(nn.Conv(self.predictor_width, (3, 3), padding=1,
                        name="predictor_conv1")(nn.gelu(z)))
    z = z + nn.Conv(self.predictor_width, (3, 3), padding=1,
                    name="predictor_conv2")(y)
    latent = nn.Dense(self.widths[-1], name="latent_head")(z)

    x = z
    for i in range(max(int(math.ceil(math.log2(h / g))), 0)):
      x = jax.image.resize(x, (b, x.shape[1] * 2, x.shape[2] * 2, x.shape[3]),
                           "nearest")
      x = nn.gelu(nn.Conv(self.decoder_width, (3, 3), padding=1,
                          name=f"decoder_conv{i}")(x))
    if x.shape[1:3] != (h, w):
      x = jax.image.resize(x, (b, h, w, x.shape[3]), "linear")
    residual = nn.Conv(c, (3, 3), padding=1, kernel_init=nn.initializers.zeros,
                       name="decoder_out")(x)
    return residual, {"action": a, "position": p, "latent": latent}
