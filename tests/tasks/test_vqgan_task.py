"""The VQGAN stage-1 task (jaxgen.tasks.vqgan, docs/vqgan.md).

The one-backward training step is checked against plain autodiff of taming-transformers' loss
(VQLPIPSWithDiscriminator: nll + λ·L_G + qloss, λ from the gradients at the decoder's last conv; the
discriminator's hinge loss): with SGD at learning rate 1 an update is −gradient, so the new parameters
give the gradients back. The task runs a stand-in autoencoder with VQModel's interface and parameter
names (``_TinyVQ``: two convs around jaxgen's VectorQuantizer) so the compiles stay cheap; the real
VQModel trains in the experiments' :smoke runs (tests/test_experiments.py). One compiled step and its
first two states are shared by the tests (a module-scope fixture).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgen import models, vq
from jaxgen.models import vqgan as vqgan_models
from jaxgen.configs import base_config
from jaxgen.errors import ConfigError
from jaxgen.recipes.vqgan import task_config
from jaxgen.tasks import vqgan


class _Decoder(nn.Module):
  @nn.compact
  def __call__(self, z, train=False):
    h = nn.swish(vqgan_models.Conv2d(8, name="conv_in")(z))
    return vqgan_models.Conv2d(1, name="conv_out")(h)


class _TinyVQ(nn.Module):
  """VQModel's interface (encode_latent, quantize_latent, decode, __call__, n_embed, beta, cosine) and
  parameter names (quantize/embedding, decoder/conv_out) on a two-conv autoencoder."""
  n_embed: int = 8
  beta: float = 0.25
  cosine: bool = False

  def setup(self):
    self.encoder = vqgan_models.Conv2d(8)
    self.quant_conv = vqgan_models.Conv2d(4, 1)
    self.quantize = vqgan_models.VectorQuantizer(self.n_embed, 4, self.beta)
    self.decoder = _Decoder()

  def encode_latent(self, x, train=False):
    return self.quant_conv(nn.swish(self.encoder(x)))

  def quantize_latent(self, z):
    return self.quantize(z)

  def decode(self, z_q, train=False):
    return self.decoder(z_q, train)

  def __call__(self, x, train=False):
    q = self.quantize_latent(self.encode_latent(x, train))
    return self.decode(q.z_q, train), q.loss, q.indices


@pytest.fixture(scope="module", autouse=True)
def _tiny_model():
  """``model.name='_tiny_vq'`` builds ``_TinyVQ`` inside this module only (the registry is untouched)."""
  mp = pytest.MonkeyPatch()
  real = models.create
  mp.setattr(models, "create", lambda name, **kw: _TinyVQ() if name == "_tiny_vq" else real(name, **kw))
  yield
  mp.undo()


def _config(**task):
  c = base_config()
  c.batch_size = 2
  c.num_train_steps = 10
  c.data.name = "digits"
  c.data.eval_split = "test"
  c.model.name = "_tiny_vq"
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 1.0
  task_config(c, **{"perceptual_weight": 0.0, "disc_start": 0, **task})
  c.task.disc.overrides = ml_collections.ConfigDict(dict(input_nc=1, ndf=8, n_layers=1))
  return c


def _batch(seed=0):
  return {"image": jax.random.uniform(jax.random.key(seed), (2, 8, 8, 1), minval=-1.0, maxval=1.0)}


@pytest.fixture(scope="module")
def run():
  """One compiled step of a task with the discriminator from step 2, an EMA codebook and dead-code restarts
  every 2 steps (threshold 1e9: every code restarts), and the states of its first two steps."""
  task = vqgan.Task(_config(disc_start=1, codebook="ema", codebook_decay=0.5, restart_every=2,
                            restart_threshold=1e9))
  step = jax.jit(task.train_step)
  s0 = jax.jit(task.init)(jax.random.key(0), _batch())
  s1, m0 = step(s0, _batch(0), jax.random.key(1))
  s2, m1 = step(s1, _batch(1), jax.random.key(2))
  reference = jax.jit(lambda s, x: _reference(task, s, x))
  return task, step, reference, (s0, s1, s2), (m0, m1)


def _reference(task, state, x):
  """taming's losses by plain autodiff (two extra backward passes for λ, as taming does), the EMA
  codebook's β·commitment in place of the codebook loss; also the latents and codes of x."""
  disc = lambda dp, xr: vqgan._apply(task.disc, dp, state.disc_state, xr, True)[0]

  def forward(p):
    x_rec, q, _ = task.model.apply({"params": p}, x, True, method=vqgan._forward)
    return x_rec, q.commitment_loss

  nll = lambda p: jnp.mean(jnp.abs(x - forward(p)[0]))
  g_loss = lambda p: -jnp.mean(disc(state.disc_params, forward(p)[0]))
  last = lambda g: g["decoder"]["conv_out"]["kernel"]
  gn, gg = last(jax.grad(nll)(state.params)), last(jax.grad(g_loss)(state.params))
  lam = jnp.clip(jnp.linalg.norm(gn) / (jnp.linalg.norm(gg) + 1e-4), 0, 1e4) * 0.8
  total = lambda p: nll(p) + lam * g_loss(p) + task.model.beta * forward(p)[1]
  x_rec = jax.lax.stop_gradient(forward(state.params)[0])

  def d_loss(dp):
    real, ds = vqgan._apply(task.disc, dp, state.disc_state, x, True)
    fake, _ = vqgan._apply(task.disc, dp, ds, x_rec, True)
    return 0.5 * (jnp.mean(jax.nn.relu(1 - real)) + jnp.mean(jax.nn.relu(1 + fake)))

  z = task.model.apply({"params": state.params}, x, method=lambda m, x: m.encode_latent(x))
  idx = task.model.apply({"params": state.params}, z, method=lambda m, z: m.quantize_latent(z).indices)
  return jax.grad(total)(state.params), jax.grad(d_loss)(state.disc_params), lam, z, idx


def test_first_step_before_disc_start_updates_the_ema_codebook(run):
  task, _, reference, (s0, s1, _), (m0, _) = run
  # before disc_start: no adversarial term, the discriminator untouched
  assert float(m0["disc_factor"]) == 0.0 and float(m0["g_loss"]) == 0.0
  for a, b in zip(jax.tree_util.tree_leaves(s0.disc_params), jax.tree_util.tree_leaves(s1.disc_params)):
    np.testing.assert_array_equal(a, b)
  # the codebook is jaxgen.vq.ema_update's (no restart after step 1 of restart_every=2)
  *_, z, idx = reference(s0, _batch(0)["image"])
  _, want = vq.ema_update(s0.codebook_ema, z.reshape(-1, 4), idx, decay=0.5, eps=1e-5)
  np.testing.assert_allclose(s1.params["quantize"]["embedding"], want, rtol=1e-5, atol=1e-7)
  assert float(m0["codes_restarted"]) == 0
  counts = vq.code_counts(idx, 8)
  np.testing.assert_allclose(m0["batch_code_usage"], vq.usage_fraction(counts), rtol=1e-6)
  np.testing.assert_allclose(m0["batch_perplexity"], vq.perplexity(counts), rtol=1e-5)
  np.testing.assert_allclose(s1.code_usage, counts)        # counts since the last restart


def test_one_backward_step_equals_autodiff_of_tamings_loss(run):
  task, _, reference, (_, s1, s2), (_, m1) = run
  g_ae, g_d, lam, z, _ = reference(s1, _batch(1)["image"])
  got_ae = jax.tree_util.tree_map(lambda a, b: a - b, s1.params, s2.params)      # SGD, lr 1
  got_d = jax.tree_util.tree_map(lambda a, b: a - b, s1.disc_params, s2.disc_params)
  for k in ("quantize",):                                  # the codebook: EMA and restarts, not SGD
    g_ae, got_ae = ({**t, k: {}} for t in (g_ae, got_ae))
  for want, got in ((g_ae, got_ae), (g_d, got_d)):
    for w, g in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
      np.testing.assert_allclose(g, w, rtol=2e-3, atol=2e-6)
  np.testing.assert_allclose(m1["d_weight"], lam, rtol=1e-4)
  assert float(m1["disc_factor"]) == 1.0 and int(s2.step) == 2 and not bool(m1["nonfinite"])
  # step 2 restarted every code (threshold 1e9): each is one of the batch's encoder outputs
  book = np.asarray(s2.params["quantize"]["embedding"])
  dist = np.min(np.sum((book[:, None, :] - np.asarray(z).reshape(1, -1, 4)) ** 2, -1), axis=1)
  np.testing.assert_allclose(dist, 0.0, atol=1e-10)
  assert float(m1["codes_restarted"]) == 8
  np.testing.assert_array_equal(s2.code_usage, 0.0)                      # counts reset at a restart
  np.testing.assert_allclose(s2.codebook_ema.embed_sum, book, rtol=1e-6)  # EMA statistics restarted too
  np.testing.assert_array_equal(s2.codebook_ema.cluster_size, 1.0)


def test_nonfinite_batch_keeps_the_state(run):
  _, step, _, (_, s1, _), _ = run
  bad = {"image": _batch()["image"].at[0, 0, 0, 0].set(jnp.nan)}
  new, metrics = step(s1, bad, jax.random.key(1))
  assert bool(metrics["nonfinite"])
  for a, b in zip(jax.tree_util.tree_leaves(s1), jax.tree_util.tree_leaves(new)):
    np.testing.assert_array_equal(a, b)


def test_sample_alternates_originals_and_reconstructions(run):
  task, _, _, (_, s1, _), _ = run
  from jaxgen.data import digits  # noqa: PLC0415
  grid = task.sample(s1, jax.random.key(0), 5, start_index=1)
  test = digits.load("test")[0]                       # the eval split, native 8×8
  rec = np.asarray(task._reconstruct({"params": s1.ema_params}, jnp.asarray(test[:2]))["image"])
  assert grid.shape == (5, 8, 8, 1)
  np.testing.assert_allclose(grid[0], rec[0], atol=1e-5)          # item 1: reconstruction of image 0
  np.testing.assert_array_equal(grid[1], test[1])                 # item 2: original of image 1
  np.testing.assert_allclose(grid[2], rec[1], atol=1e-5)          # item 3: reconstruction of image 1
  np.testing.assert_array_equal(grid[3], test[2])                 # item 4: original of image 2
  fns = task.eval_functions(s1)
  out = fns["reconstruct"]({"image": test[:2]})
  np.testing.assert_allclose(out["image"], rec, atol=1e-5)
  assert out["indices"].shape == (2, 8, 8) and fns["data"]["num_codes"] == 8


def test_config_errors_name_the_fix():
  with pytest.raises(ConfigError, match="lpips_weights"):
    vqgan.Task(_config(perceptual_weight=1.0))
  c = _config()
  c.task.disc_optimizer = None
  with pytest.raises(ConfigError, match="disc_optimizer"):
    vqgan.Task(c)
  c = _config(codebook="ema")
  c.model.name = "vqgan_tiny"
  c.model.overrides = ml_collections.ConfigDict(dict(cosine=True))
  with pytest.raises(ConfigError, match="cosine"):
    vqgan.Task(c)
  c.model.name = "patchgan"
  c.model.overrides = ml_collections.ConfigDict()
  with pytest.raises(ConfigError, match="not a VQGAN autoencoder"):
    vqgan.Task(c)
  with pytest.raises(ConfigError, match="disc_loss"):
    vqgan.Task(_config(disc_loss="wasserstein"))


def test_loss_helpers_match_tamings_formulas():
  real, fake = jnp.array([2.0, 0.5, -1.0]), jnp.array([-2.0, 0.0, 1.0])
  # hinge: ½(mean relu(1 − r) + mean relu(1 + f)) = ½((0 + .5 + 2)/3 + (0 + 1 + 2)/3)
  np.testing.assert_allclose(vqgan.hinge_d_loss(real, fake), 0.5 * (2.5 / 3 + 3 / 3), rtol=1e-6)
  sp = lambda v: np.log1p(np.exp(v))
  want = 0.5 * (np.mean(sp(-np.asarray(real))) + np.mean(sp(np.asarray(fake))))
  np.testing.assert_allclose(vqgan.vanilla_d_loss(real, fake), want, rtol=1e-6)
  a, b = jnp.full((3, 3, 2, 1), 1.0), jnp.full((3, 3, 2, 1), 2.0)     # ‖a‖ = √18, ‖b‖ = 2√18
  np.testing.assert_allclose(vqgan.adaptive_weight(a, b, 0.8), 0.8 * np.sqrt(18) / (2 * np.sqrt(18) + 1e-4),
                             rtol=1e-6)
  assert float(vqgan.adaptive_weight(a, jnp.zeros_like(b), 1.0)) == 1e4          # clamped


def test_discriminator_learns_real_from_reconstructed_through_the_step():
  """With the autoencoder frozen (Adam at lr 0) its reconstructions of a fixed batch stay far from the
  images (PSNR ≈ 10 dB); the discriminator, updated inside the task's step with its own Adam state and
  BatchNorm statistics, must then separate them: the hinge loss leaves 1 (its value while D(x) = D(x̂), as at
  taming's N(0, 0.02) init) and falls below 0.5 with mean D(x) > mean D(x̂). Guards the wiring of the
  discriminator's update (disc_factor, stop_gradient of x̂, optimizer state, batch_stats, the nonfinite
  guard), which a discriminator stuck at d_loss 1.00 would point to (docs/vqgan.md, the digits run)."""
  c = _config(disc_start=0, adaptive_weight=False, disc_weight=0.0)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 0.0
  c.task.disc_optimizer.name = "adam"
  c.task.disc_optimizer.learning_rate = 1e-2
  task = vqgan.Task(c)
  batch = _batch(3)
  s0 = jax.jit(task.init)(jax.random.key(0), batch)
  steps = 25

  @jax.jit
  def train(s):
    def body(s, k):
      s, m = task.train_step(s, batch, k)
      return s, (m["d_loss"], m["logits_real"], m["logits_fake"])
    return jax.lax.scan(body, s, jax.random.split(jax.random.key(1), steps))

  s, (d_loss, real, fake) = train(s0)
  np.testing.assert_allclose(d_loss[0], 1.0, atol=0.05)          # D(x) ≈ D(x̂) ≈ its bias at init
  assert float(d_loss[-1]) < 0.5 and float(real[-1]) > float(fake[-1]), (d_loss, real, fake)
  for a, b in zip(jax.tree_util.tree_leaves(s0.params), jax.tree_util.tree_leaves(s.params)):
    np.testing.assert_array_equal(a, b)                           # lr 0: the autoencoder is frozen
  leaves = jax.tree_util.tree_leaves
  for t0, t in ((s0.disc_params, s.disc_params), (s0.disc_state, s.disc_state)):   # weights, batch_stats
    assert all(not np.allclose(a, b) for a, b in zip(leaves(t0), leaves(t)))
  counts = [x for x in jax.tree_util.tree_leaves(s.disc_opt_state) if np.ndim(x) == 0]
  assert counts and all(int(x) == steps for x in counts)          # Adam's step count carried across steps
