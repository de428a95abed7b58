"""SongUNet's GroupNorm (jaxgen.models.unet_song.group_norm under jax.checkpoint) against flax.

Reference: flax ``nn.GroupNorm(use_fast_variance=False)`` in float32 followed by ``nn.silu``, the
implementation it replaced (torch's group_norm semantics): the forward pass must be bitwise the same and
the gradients equal to float32 rounding, with or without the remat; the remat must save only the
per-(example, group) statistics besides the inputs.
"""

import contextlib
import functools
import io

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.models import unet_song

SHAPE = (2, 4, 4, 16)   # 16 channels → min(32, 16 // 4) = 4 groups


class FlaxGN(nn.Module):
  eps: float = 1e-6
  dtype: object = jnp.float32
  act: bool = False

  @nn.compact
  def __call__(self, x):
    y = nn.GroupNorm(num_groups=4, epsilon=self.eps, dtype=jnp.float32, param_dtype=jnp.float32,
                     use_fast_variance=False, name="norm")(x.astype(jnp.float32)).astype(self.dtype)
    return nn.silu(y) if self.act else y


@functools.cache
def _inputs(dtype):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=SHAPE) * 3 + 1.5, jnp.float32).astype(dtype)
  ct = jnp.asarray(rng.normal(size=SHAPE), jnp.float32).astype(dtype)
  params = {"params": {"norm": {"scale": jnp.asarray(1 + 0.3 * rng.normal(size=16), jnp.float32),
                                "bias": jnp.asarray(0.3 * rng.normal(size=16), jnp.float32)}}}
  return x, ct, params


@pytest.mark.parametrize("remat", [True, False])
@pytest.mark.parametrize("act", [None, "silu"])
def test_matches_flax_groupnorm(act, remat, monkeypatch):
  monkeypatch.setattr(unet_song, "GROUPNORM_REMAT", remat)
  x, ct, params = _inputs(jnp.float32)
  new = unet_song.GroupNorm(1e-6, act=act)
  old = FlaxGN(act=act is not None)
  assert jax.tree_util.tree_structure(new.init(jax.random.key(0), x)) == jax.tree_util.tree_structure(params)
  y_new, vjp_new = jax.vjp(lambda p, x: new.apply(p, x), params, x)
  y_old, vjp_old = jax.vjp(lambda p, x: old.apply(p, x), params, x)
  np.testing.assert_array_equal(y_new, y_old)
  for g_new, g_old in zip(jax.tree_util.tree_leaves(vjp_new(ct)), jax.tree_util.tree_leaves(vjp_old(ct))):
    np.testing.assert_allclose(g_new, g_old, rtol=1e-5, atol=1e-6 * float(jnp.abs(g_old).max()))


def test_bf16_forward_identical_and_only_statistics_saved():
  x, _, params = _inputs(jnp.bfloat16)
  new = unet_song.GroupNorm(1e-6, dtype=jnp.bfloat16, act="silu")
  f = lambda p, x: new.apply(p, x)
  np.testing.assert_array_equal(f(params, x), FlaxGN(dtype=jnp.bfloat16, act=True).apply(params, x))
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    jax.ad_checkpoint.print_saved_residuals(f, params, x)
  saved = [line for line in out.getvalue().splitlines() if "from the argument" not in line]
  assert len(saved) == 2 and all(line.startswith("f32[2,4] ") for line in saved), saved   # μ and σ²
