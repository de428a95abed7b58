"""Spectral normalization (Miyato et al. 2018) as a Flax module wrapper.

    layer = SpectralNorm(nn.Dense(128))          # or nn.Conv(...), any layer with a 'kernel'
    y, upd = layer.apply(v, x, update_stats=True, mutable=['spectral'])

Each wrapped kernel W (reshaped to [fan_in, out], the last axis being the output) is replaced by
W / σ̂(W), σ̂ a power-iteration estimate of its largest singular value. The persistent vector
u ∈ R^out lives in the ``spectral`` collection. With ``update_stats=True`` (training) u advances
``n_power_iterations`` steps, v ← Wu/‖Wu‖, u ← Wᵀv/‖Wᵀv‖, is stored, and σ̂ = ‖W u‖ with the *new* u;
u is a constant for differentiation. With ``update_stats=False`` the stored u is used as is (no
iteration), so evaluation is deterministic, cheap and never changes the state, like BatchNorm's
running statistics. Needs Flax; ``jaxgen.gan`` imports this module only when one of its names is used.

Why not ``flax.linen.SpectralNorm`` (compared in tests/gan/test_penalties.py, flax 0.12): it differs
in three ways that change results or checkpoints.
  1. The estimate. After the same step (v₁ = Wu₀/‖Wu₀‖, u₁ = Wᵀv₁/‖Wᵀv₁‖) Flax divides by
     v₁ᵀWu₁ = ‖Wᵀv₁‖ (Miyato et al.'s Alg. 1, as torch.nn.utils.spectral_norm); this module by
     ‖Wu₁‖, half a power step further. Both are lower bounds of σ_max that converge to it, and
     ‖Wu₁‖ ≥ ‖Wᵀv₁‖ (Cauchy–Schwarz), so the same state gives a different normalized kernel.
  2. Evaluation. With ``update_stats=False`` Flax still runs ``n_steps`` iterations from the stored u
     (without storing the result); here evaluation reads the stored u, σ̂ = ‖Wu‖.
  3. The state. Flax keeps u as [1, out] plus σ under '<layer>/kernel/u' in ``batch_stats`` by
     default (the GAN task refuses a gradient-penalty critic that has ``batch_stats``, since it
     reads them as BatchNorm's) and names the wrapped layer ``layer_instance`` (here ``layer``), so
     checkpoints of spectrally normalized critics would not restore.
(Flax also normalizes by x·rsqrt(‖x‖² + ε) rather than x / max(‖x‖, ε); immaterial at ε = 1e-12.)
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["SpectralNorm", "power_iteration"]


def _normalize(x, eps):
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def power_iteration(w2d, u, n: int, eps: float = 1e-12):
  """n power-iteration steps for the top singular pair of ``w2d[fan_in, out]``; returns (σ̂, u).

  σ̂ = ‖w2d·u‖ with the returned u (a lower bound of the largest singular value; n = 0 keeps u).
  """
  w2d = jnp.asarray(w2d, jnp.float32)
  for _ in range(n):
    v = _normalize(w2d @ u, eps)
    u = _normalize(w2d.T @ v, eps)
  u = jax.lax.stop_gradient(u)
  return jnp.linalg.norm(w2d @ u), u


class SpectralNorm(nn.Module):
  """Wraps ``layer`` so its kernels (params named in ``param_names``) are spectrally normalized."""

  layer: nn.Module
  n_power_iterations: int = 1
  eps: float = 1e-12
  collection: str = "spectral"
  param_names: Sequence[str] = ("kernel",)

  @nn.compact
  def __call__(self, *args, update_stats: bool = False, **kwargs) -> Any:
    def normalize(path, w):
      name = path[-1].key if hasattr(path[-1], "key") else str(path[-1])
      if name not in self.param_names or w.ndim < 2:
        return w
      w2d = w.reshape(-1, w.shape[-1])
      tag = "/".join(str(getattr(p, "key", p)) for p in path[1:])
      u_var = self.variable(self.collection, f"u_{tag}",
                            lambda: _normalize(jax.random.normal(self.make_rng("params"),
                                                                 (w.shape[-1],), jnp.float32), self.eps))
      n = self.n_power_iterations if update_stats else 0
      sigma, u = power_iteration(w2d, u_var.value, n, self.eps)
      if update_stats and not self.is_initializing():
        u_var.value = u
      return (w / jnp.maximum(sigma, self.eps).astype(w.dtype)).astype(w.dtype)

    def trans_in(variables):
      return jax.tree_util.tree_map_with_path(normalize, variables)

    return nn.map_variables(lambda mdl, *a, **k: mdl(*a, **k), "params", trans_in_fn=trans_in,
                            init=self.is_initializing(), mutable=True)(self.layer, *args, **kwargs)
