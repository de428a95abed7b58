"""The task contract and the default loss-based task.

A task is an object built from the whole config, ``Task(config)``, exposing pure functions the
trainer jit-compiles and shards (batch over the mesh axes ``'data'`` and ``'fsdp'``, state replicated
or split by the config's sharding rules, docs/pods.md "Sharded state"; the task's code is the same):

  init(key, example_batch) -> state            # a pytree with an int32 ``step`` field
  train_step(state, batch, key) -> (state, metrics)   # metrics: dict of scalars, at least 'loss'
  eval_functions(state) -> dict                       # what the evaluators of config.evals may call
  evaluate(state, key, batches) -> dict[str, float]   # batches: iterable of eval batches or None
  sample(state, key, n, start_index=0) -> array       # generators only; sample i depends only on
                                                      # (key, start_index + i)

Evaluation is chosen by the config: ``config.evals`` lists evaluators (``jaxgen.eval.evaluators``), and
``Task.evaluate`` runs them on the functions ``eval_functions(state)`` returns ('sample', 'predict',
'denoise', 'loss', 'critic', 'data'; see that module). A task states the keys it provides in
``EVAL_FUNCTIONS``, so a config asking for a function the task lacks, an unknown evaluator type or
option is a ``ConfigError`` when the task is built, not after training. ``preflight()`` checks the local
files the evaluators read (the trainer calls it before training or evaluating). A task that leaves
``EVAL_FUNCTIONS`` None skips only the ``needs`` check when it is built (``evaluate`` checks it against the
keys ``eval_functions`` returns); evaluator types, options and data are still checked when the task is
built. Such a task may also override ``evaluate`` entirely.

``train_step`` must be pure (no Python side effects): the trainer calls it under ``jax.jit`` with
the state donated. Non-finite guard: a train_step returns ``metrics['nonfinite']`` (bool) and, when
it is set, the *old* state unchanged, so no bad update ever reaches a checkpoint.

Most families only need ``LossTask``: define ``init_variables`` and ``loss``, and the base class
supplies optimizer (``jaxgen.optim``), gradient accumulation, EMA, and the guard. Families with
several optimizers (GANs) override ``init``/``train_step`` and reuse the helpers here.
"""

from __future__ import annotations

import abc
from typing import Any, Iterable

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgen import config_schema, optim
from jaxgen.eval import evaluators


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint holds besides the data iterator position.

  step: completed updates (int32 scalar). params / ema_params: same tree. opt_state: optax state.
  model_state: non-trainable collections (e.g. {'batch_stats': ...}), ``{}`` if none.
  rng: raw uint32 key data of the run's base key (``jax.random.key_data``); the trainer derives the
  key of step s as ``fold_in(wrap_key_data(rng), s)`` so a resumed run draws the same randomness.
  """

  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any
  model_state: Any
  rng: jax.Array


def tree_where(pred, new, old):
  """Leaf-wise ``where(pred, new, old)`` over two pytrees of the same structure."""
  return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


class Task(abc.ABC):
  """Base class: holds the config; subclasses implement the contract above."""

  # The keys of ``eval_functions(state)`` (None: not declared; checked when evaluate runs).
  EVAL_FUNCTIONS: tuple[str, ...] | None = None

  def __init__(self, config):
    self.config = config
    evaluators.check(config, self.EVAL_FUNCTIONS, task=self.task_name)

  @property
  def task_name(self) -> str:
    return str(config_schema.lookup(self.config, "task.name", type(self).__module__))

  def create_model(self, *, needs: str = "", otherwise: str = ""):
    """The network ``model.name`` built with ``model.dtype`` and ``model.overrides``. ``needs``: a method the
    task calls; a registered model without it is a ConfigError ``model.name=... <otherwise>``."""
    from jaxgen import models  # noqa: PLC0415
    from jaxgen.errors import ConfigError  # noqa: PLC0415

    dtype = config_schema.lookup(self.config, "model.dtype", "float32")
    overrides = config_schema.to_dict(config_schema.lookup(self.config, "model.overrides", None))
    net = models.create(self.config.model.name, dtype=dtype, **overrides)
    if needs and not hasattr(net, needs):
      raise ConfigError(f"model.name={self.config.model.name!r} {otherwise}")
    return net

  @abc.abstractmethod
  def init(self, key, example_batch):
    """See the contract in the module docstring."""

  @abc.abstractmethod
  def train_step(self, state, batch, key):
    """See the contract in the module docstring."""

  def eval_functions(self, state) -> dict:
    """The functions the evaluators of ``config.evals`` call (see ``jaxgen.eval.evaluators``)."""
    return {}

  def evaluate(self, state, key, batches: Iterable | None) -> dict[str, float]:
    """Runs ``config.evals`` (entry i with ``fold_in(key, i)``) and merges their metrics."""
    evals = config_schema.lookup(self.config, "evals", None)
    if not evaluators.entries(evals):
      return {}
    return evaluators.run(evals, self.eval_functions(state), key, batches, task=self.task_name)

  def preflight(self) -> None:
    """Checks the local files the configured evaluators read (ConfigError naming the flag to set)."""
    evaluators.preflight(self.config)

  def sample(self, state, key, n: int, start_index: int = 0):
    raise NotImplementedError(f"{type(self).__name__} does not generate samples (--mode sample "
                              "is for generative tasks).")


class LossTask(Task):
  """A task defined by one differentiable loss; the base class does the rest.

  Subclasses implement:
    init_variables(key, example_batch) -> dict of collections with 'params'
    loss(params, model_state, batch, key, train) -> (scalar loss, metrics dict, new model_state)
  """

  @abc.abstractmethod
  def init_variables(self, key, example_batch) -> dict:
    """See the contract in the module docstring."""

  @abc.abstractmethod
  def loss(self, params, model_state, batch, key, train: bool):
    """See the contract in the module docstring."""

  # --- provided -------------------------------------------------------------------------------
  @property
  def optimizer(self) -> optax.GradientTransformation:
    return optim.make_optimizer(self.config.optimizer, self.config.num_train_steps)

  def init(self, key, example_batch) -> TrainState:
    variables = dict(self.init_variables(key, example_batch))
    params = variables.pop("params")
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=self.optimizer.init(params), ema_params=params,
                      model_state=variables,
                      rng=jax.random.key_data(jax.random.key(self.config.seed)))

  def _grads(self, params, model_state, batch, key):
    """Mean gradient over ``optimizer.grad_accum_steps`` micro-batches (a ``lax.scan``)."""
    accum = int(self.config.optimizer.get("grad_accum_steps", 1))

    def loss_fn(p, ms, b, k):
      loss, metrics, ms = self.loss(p, ms, b, k, True)
      return loss, (metrics, ms)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if accum == 1:
      (loss, (metrics, model_state)), grads = grad_fn(params, model_state, batch, key)
      return loss, metrics, model_state, grads

    def split(x):
      return x.reshape((accum, x.shape[0] // accum) + x.shape[1:])

    micro = jax.tree_util.tree_map(split, batch)

    def body(carry, inp):
      ms, gsum, lsum, msum = carry
      i, b = inp
      (l, (m, ms)), g = grad_fn(params, ms, b, jax.random.fold_in(key, i))
      gsum = jax.tree_util.tree_map(jnp.add, gsum, g)
      msum = jax.tree_util.tree_map(jnp.add, msum, m)
      return (ms, gsum, lsum + l, msum), None

    (l0, (m0, _)), _ = jax.eval_shape(grad_fn, params, model_state,
                                      jax.tree_util.tree_map(lambda x: x[0], micro), key)
    zeros = lambda t: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), t)
    init = (model_state, zeros(params), jnp.zeros((), jnp.float32), zeros(m0))
    (model_state, gsum, lsum, msum), _ = jax.lax.scan(body, init, (jnp.arange(accum), micro))
    scale = 1.0 / accum
    grads = jax.tree_util.tree_map(lambda g: g * scale, gsum)
    metrics = jax.tree_util.tree_map(lambda m: m * scale, msum)
    return lsum * scale, metrics, model_state, grads

  def train_step(self, state: TrainState, batch, key):
    loss, metrics, model_state, grads = self._grads(state.params, state.model_state, batch, key)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    beta = optim.ema_decay(self.config.optimizer, state.step, self.config.batch_size)
    ema = optim.ema_update(state.ema_params, params, beta)
    new = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
                        model_state=model_state)
    grad_norm = optax.global_norm(grads)
    # ‖g‖ is NaN/inf whenever a gradient entry is (or when ‖g‖² overflows float32, also worth
    # rejecting) and reuses the norm's reduction: a separate per-leaf isfinite reduction made XLA's CPU
    # compile of CNN train steps (MobileNetV2) ~4× slower.
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = tree_where(ok, new, state)
    metrics = dict(metrics)
    metrics.update(loss=loss, grad_norm=grad_norm, nonfinite=~ok,
                   learning_rate=optim.make_schedule(self.config.optimizer,
                                                     self.config.num_train_steps)(state.step))
    return new, metrics
