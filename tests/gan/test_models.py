"""GAN networks: parameter counts (jax.eval_shape, no memory) and structural invariants."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxgen import models
from jaxgen.errors import ConfigError


@pytest.mark.parametrize("name,overrides,expected", [
    # gan_toy.py (igul222/improved_wgan_training): 3 hidden Dense(512), 2-D noise / data.
    ("gan_mlp_g", {}, 2 * 512 + 512 + 2 * (512 * 512 + 512) + 512 * 2 + 2),            # 527,874
    ("gan_mlp_d", {}, 2 * 512 + 512 + 2 * (512 * 512 + 512) + 512 + 1),                # 527,361
    # pytorch/examples dcgan (nz=100, ngf=ndf=64, nc=3): netG 3,576,704, netD 2,765,568 params.
    ("dcgan64_g", {}, 3_576_704),
    ("dcgan64_d", {}, 2_765_568),
    # the same recipe at 32² (one stage fewer): 100·16·256 + ConvT 256→128→64→3 + BN(256,128,64)
    ("dcgan32_g", {}, 100 * 16 * 256 + 16 * (256 * 128 + 128 * 64 + 64 * 3) + 2 * (256 + 128 + 64)),
    ("dcgan32_d", {}, 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256) + 2 * (128 + 256)),
    # gan_cifar_resnet.py, unconditional (DIM 128, BN in G only), counted layer by layer:
    # G: Linear 128→2048 (264,192) + 3 up-blocks × (2 BN 512 + 2 conv3×3 295,168 + 1×1 16,512)
    #    + BN 256 + conv3×3 128→3 (3,459)
    ("wgan_resnet_g", {}, 264_192 + 3 * (512 + 295_168 + 16_512) + 256 + 3_459),        # 1,204,483
    # D: block1 (conv 3→128 3,584 + conv 147,584 + 1×1 3→128 512) + down block (2 convs + 1×1)
    #    + 2 identity-shortcut blocks (2 convs each) + Linear 128→1
    ("wgan_resnet_d", {}, 151_680 + 311_680 + 2 * 295_168 + 129),                         # 1,053,825
])
def test_param_counts(name, overrides, expected):
  assert models.count_params(models.param_shapes(name, **overrides)) == expected


def test_gp_critics_have_no_batch_norm_and_generators_do():
  assert set(models.init_shapes("wgan_resnet_d")) == {"params"}
  assert set(models.init_shapes("dcgan32_d", norm="layer")) == {"params"}
  assert "batch_stats" in models.init_shapes("wgan_resnet_g")
  assert "batch_stats" in models.init_shapes("dcgan64_g")


@pytest.mark.parametrize("g,d,kw", [("dcgan32_g", "dcgan32_d", dict(base=4)),
                                    ("wgan_resnet_g", "wgan_resnet_d", dict(dim=4))])
def test_tiny_forward_shapes_range_and_per_sample_critic(g, d, kw):
  gen, crit = models.create(g, **kw), models.create(d, **{**kw, **({"norm": "none"} if d.startswith("dcgan") else {})})
  z = jax.random.normal(jax.random.key(0), (3, 100 if g.startswith("dcgan") else 128))
  gv = gen.init(jax.random.key(1), z)
  x, _ = gen.apply(gv, z, train=True, mutable=["batch_stats"])
  assert x.shape == (3, 32, 32, 3) and float(jnp.max(jnp.abs(x))) <= 1.0
  dv = crit.init(jax.random.key(2), x)
  y = crit.apply(dv, x)
  assert y.shape == (3,)
  # per-sample: changing the other samples leaves D(x_0) unchanged (required by the GP)
  y2 = crit.apply(dv, x.at[1:].set(0.0))
  np.testing.assert_allclose(y2[0], y[0], rtol=1e-6)


def test_bad_resolution_names_the_fix():
  with pytest.raises(ConfigError, match="4·2\\^k"):
    models.param_shapes("dcgan32_g", resolution=48)


@pytest.mark.parametrize("name,layers", [("gan_mlp_d", 4), ("dcgan32_d", 4)])
def test_spectral_norm_keeps_the_parameters_and_adds_one_vector_per_layer(name, layers):
  # jaxgen.gan.SpectralNorm (kept over flax.linen.SpectralNorm: see its docstring) wraps each layer:
  # the same trainable count, plus one u ∈ R^out per kernel in the 'spectral' collection.
  kw = {"norm": "none"} if name.startswith("dcgan") else {}
  plain = models.init_shapes(name, **kw)
  sn = models.init_shapes(name, spectral_norm=True, **kw)
  assert models.count_params(sn["params"]) == models.count_params(plain["params"])
  assert set(sn) == {"params", "spectral"} and len(jax.tree_util.tree_leaves(sn["spectral"])) == layers
