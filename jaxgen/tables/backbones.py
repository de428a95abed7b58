"""Efficient-CNN tables: the papers' parameter and multiply-add counts beside ours.

``python -m jaxgen.tables backbones``. Our numbers come from ``jaxgen.flops`` (a traced forward at
batch 1, no computation) and the ``params`` collection of the registered model. Deviations over 2%
are flagged with ``*`` and explained in the table notes. Papers round to 2–3 significant figures.

Also: ImageNet top-1 of the torchvision releases (published / converted / jaxgen-trained, from the results
file, ``jaxgen.tables.three_columns``); EfficientNet's compound scaling rule (α = 1.2, β = 1.1, γ = 1.15)
at φ = 1…7 beside the released B1–B7 coefficients; and the cost of GoogLeNet's inception (3a) module without
and with its 1×1 reductions (Szegedy et al. 2015 §4, Fig. 2), counted by ``jaxgen.flops`` on jaxgen layers.
"""

from __future__ import annotations

import math

from jaxgen import flops
from jaxgen.tables import Table, deviation, three_columns

TOL = 0.02


def _dev(ours: float, paper: float | None) -> str:
  if paper is None:
    return "—"
  d = deviation(ours, paper)
  return f"{d * 100:+.1f}%" + ("*" if abs(d) > TOL else "")


def _row(label, name, res, p_params_m, p_macs_m, extra=(), **ov):
  params = flops.param_count(name, **ov) / 1e6
  macs = flops.count_macs(name, res, **ov) / 1e6
  return [label, res, p_params_m if p_params_m is not None else "—", round(params, 3), _dev(params, p_params_m),
          p_macs_m if p_macs_m is not None else "—", round(macs, 1), _dev(macs, p_macs_m), *extra]


_COLS = ["model", "res", "params M (paper)", "params M (ours)", "dev", "MMACs (paper)", "MMACs (ours)", "dev"]


def efficientnet() -> Table:
  # Tan & Le 2019, Table 2 (params, FLOPs); torchvision EfficientNet_B*_Weights meta "_ops" (GFLOPS =
  # GMACs), counted at torchvision's crop size (B2: 288, the others the paper's resolution)
  paper = {"b0": (5.3, 390), "b1": (7.8, 700), "b2": (9.2, 1000), "b3": (12, 1800), "b4": (19, 4200),
           "b5": (30, 9900), "b6": (43, 19000), "b7": (66, 37000)}
  tv_ops = {"b0": 386, "b1": 687, "b2": 1088, "b3": 1827, "b4": 4394, "b5": 10266, "b6": 19068, "b7": 37746}
  from jaxgen.models.efficientnet import RESOLUTIONS
  rows = []
  for v, (p, m) in paper.items():
    name = f"efficientnet_{v}"
    res = RESOLUTIONS[name]
    tv_res = 288 if v == "b2" else res
    rows.append(_row(f"EfficientNet-{v.upper()}", name, res, p, m,
                     extra=(tv_ops[v], round(flops.count_macs(name, tv_res) / 1e6, 1), tv_res)))
  return Table("EfficientNet (Table 2): params and multiply-adds at each model's resolution",
               _COLS + ["torchvision MMACs", "ours there", "at res"], rows,
               source="Tan & Le, ICML 2019, Table 2; torchvision EfficientNet weights meta '_ops'",
               notes=["B4 (+4.6%), B5 (+3.7%), B7 (+2.0%): the known gap between Table 2 and the architecture "
                      "it describes (B0 table + compound coefficients + round_filters/round_repeats). The "
                      "parameter counts match to the paper's rounding and torchvision's independent count "
                      "('_ops', at the same resolutions 380/456/600) equals ours to the printed digit "
                      "(4.394, 10.266, 37.746 GMACs), so the FLOPs printed in Table 2 for these models are "
                      "not those of the released architecture.",
                      "torchvision evaluates B2 at 288 px (its '_ops' 1.088 G); ours at 288 agrees, and at the "
                      "paper's 260 px ours (0.994 G) matches Table 2's 1.0B.",
                      "B3 params: paper rounds 12.23M to '12M' (+1.9%)."])


def mobilenet_v1() -> Table:
  # Howard et al. 2017: Table 6 (width multipliers at 224) and Table 7 (resolutions at width 1.0);
  # the other grid points from TF-slim's mobilenet_v1.md (released checkpoints, Million MACs).
  paper = {(1.0, 224): (4.2, 569), (0.75, 224): (2.6, 325), (0.5, 224): (1.3, 149), (0.25, 224): (0.5, 41),
           (1.0, 192): (4.2, 418), (1.0, 160): (4.2, 290), (1.0, 128): (4.2, 186)}
  slim = {(0.75, 192): 233, (0.75, 160): 162, (0.75, 128): 104, (0.5, 192): 110, (0.5, 160): 77,
          (0.5, 128): 49, (0.25, 192): 34, (0.25, 160): 21, (0.25, 128): 14}
  slim_params = {1.0: 4.24, 0.75: 2.59, 0.5: 1.34, 0.25: 0.47}
  names = {1.0: "mobilenet_v1", 0.75: "mobilenet_v1_075", 0.5: "mobilenet_v1_050", 0.25: "mobilenet_v1_025"}
  rows = []
  for a in (1.0, 0.75, 0.5, 0.25):
    for r in (224, 192, 160, 128):
      if (a, r) in paper:
        p, m = paper[(a, r)]
        rows.append(_row(f"{a}-MobileNet-{r}", names[a], r, p, m, extra=("paper",)))
      else:
        rows.append(_row(f"{a}-MobileNet-{r}", names[a], r, slim_params[a], slim[(a, r)], extra=("TF-slim",)))
  return Table("MobileNet V1: width multiplier × resolution", _COLS + ["ref"], rows,
               source="Howard et al. 2017, Tables 6-7; other grid points: TF-slim nets/mobilenet_v1.md",
               notes=["1.0 params: the paper's 4.2M (Tables 6-7) vs 4,231,976 (Keras; ours equal); 0.5: 1.33M "
                      "rounded to '1.3M' (+2.4%); 0.25: 0.47M rounded to '0.5M' (−6%); Keras/Gluon counts "
                      "(4,231,976 / 2,585,560 / 1,331,592 / 470,072) equal ours.",
                      "0.75 at 192/160/128: TF-slim's README lists 233/162/104, 2.7% below ours; its own 0.75-224 "
                      "entry (317M) is likewise 2.6% below the paper's Table 6 (325M), which ours reproduce "
                      "(325.4M), so the TF-slim 0.75 row uses a different count.",
                      "0.25-192: TF-slim's 34M is inconsistent with its own 0.25-224 (41M × (192/224)² = 30.1M, "
                      "ours 30.2M); 0.25-128: TF-slim prints whole MMACs (14 for 13.6)."])


def mobilenet_v2_v3() -> Table:
  rows = [
      _row("MobileNetV2 1.0", "mobilenet_v2", 224, 3.4, 300),
      _row("MobileNetV3-Large 1.0", "mobilenet_v3_large", 224, 5.4, 219),
      _row("MobileNetV3-Small 1.0", "mobilenet_v3_small", 224, 2.5, 56),
  ]
  return Table("MobileNet V2 / V3", _COLS, rows,
               source="Sandler et al. 2018 Table 4 (300M, 3.4M); Howard et al. 2019 Table 3 (219M/5.4M, 56M/2.5M)",
               notes=["MobileNetV2 params +3.1%: the paper's '3.4M' excludes the 1000-way classifier's "
                      "bias and rounds down; torchvision and Keras both have 3,504,872 (ours equal).",
                      "MobileNetV3 params (+1.5%, +1.7%) are within the paper's rounding; torchvision: "
                      "5,483,032 and 2,542,856 (ours equal)."])


def shufflenet() -> Table:
  v1 = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}       # paper Table 1, 1× complexity (MFLOPs)
  v1_params = {3: 1.9, 8: 2.4}                         # Megvii ShuffleNet-Series README
  rows = [_row(f"ShuffleNet V1 1× (g={g})", f"shufflenet_v1_g{g}", 224, v1_params.get(g), m) for g, m in v1.items()]
  v2 = {"x0_5": (1.4, 41), "x1_0": (2.3, 146), "x1_5": (3.5, 299), "x2_0": (7.4, 591)}
  rows += [_row(f"ShuffleNet V2 {s[1:].replace('_', '.')}×", f"shufflenet_v2_{s}", 224, p, m) for s, (p, m) in v2.items()]
  return Table("ShuffleNet V1 / V2 (Megvii units)", _COLS, rows,
               source="Zhang et al. 2018 Table 1; Ma et al. 2018 Table 8; params: Megvii ShuffleNet-Series READMEs",
               notes=["V1 params for g=1,2,4 are not published (osmr/imgclsmob: 1,531,936 / 1,733,848 / "
                      "1,968,344 with a classifier bias; ours equal with classifier_bias=True).",
                      "V2 0.5× params −2.4%: Megvii's README rounds 1.366M to '1.4M'."])


def googlenet_xception() -> Table:
  rows = [
      _row("GoogLeNet (torchvision)", "googlenet", 224, 6.8, 1500),
      _row("GoogLeNet (paper variant)", "googlenet", 224, 6.8, 1500, variant="paper"),
      _row("Xception", "xception", 299, 22.855952, None),
  ]
  return Table("GoogLeNet / Xception", _COLS, rows,
               source="Szegedy et al. 2015 Table 1 and §5 ('1.5 billion multiply-adds'); Chollet 2017 Table 3",
               notes=["GoogLeNet params: Table 1's column sums to 6.8M but is internally inconsistent (conv1 "
                      "listed as 2.7K though 7×7×3×64 = 9.4K; biases omitted). torchvision (BN, no biases, "
                      "3×3 in the '5×5' branch) has 6,624,904 (ours equal, −2.6%); the paper variant with "
                      "true 5×5 branches and biases has 7.0M (+2.9%).",
                      "GoogLeNet MACs: §5's 1.5B matches torchvision's 3×3 branches (1.498G); the paper's own "
                      "5×5 branches give 1.583G (+5.5%), i.e. the '1.5 billion' is a rounded figure.",
                      "Xception: the paper gives no FLOPs; its 22,855,952 parameters (Table 3) are ours exactly."])


def imagenet_top1(results: str | None = None) -> Table:
  """ImageNet validation top-1: torchvision's published accuracy of each release, the release converted to
  jaxgen (``jaxgen.convert.torchvision`` / ``efficientnet``), and a network jaxgen trained."""
  return three_columns(
      "imagenet_top1", "ImageNet-1k validation top-1 (%) of the torchvision releases",
      "torchvision IMAGENET1K_V1 weights meta 'acc@1'; measured by `python -m jaxgen.eval.reproduce "
      "imagenet_top1` (docs/reproduce.md)", results,
      notes=["Evaluation crop as torchvision's ImageClassification preset: resize the short side to 256, central "
             "224 crop (jaxgen: central square of 0.875 × the short side, resized to 224; bilinear, bicubic for "
             "EfficientNet-B0), 50,000 validation images."])


# EfficientNet compound scaling (Tan & Le 2019, eq. 3 and §4): depth α^φ, width β^φ, resolution γ^φ with
# α·β²·γ² ≈ 2, found by grid search at φ = 1 on B0.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def compound_coefficients(phi: float, base_resolution: int = 224) -> tuple[float, float, float]:
  """(width β^φ, depth α^φ, resolution 224·γ^φ) of the compound scaling rule."""
  return BETA ** phi, ALPHA ** phi, base_resolution * GAMMA ** phi


def implied_phi(width: float, depth: float, resolution: float, base_resolution: int = 224) -> tuple[float, ...]:
  """The φ each released coefficient corresponds to: (log_β width, log_α depth, log_γ(resolution/224))."""
  return (math.log(width) / math.log(BETA), math.log(depth) / math.log(ALPHA),
          math.log(resolution / base_resolution) / math.log(GAMMA))


def compound_scaling() -> Table:
  from jaxgen.models.efficientnet import COEFFICIENTS
  rows = []
  for k in range(1, 8):
    w, d, r, _ = COEFFICIENTS[f"b{k}"]
    dw, dd, dr = compound_coefficients(k)
    pw, pd, pr = implied_phi(w, d, r)
    rows.append([f"B{k}", k, f"{dw:.3f}, {dd:.3f}, {dr:.1f}", f"{w}, {d}, {r}", f"{pw:.2f}", f"{pd:.2f}", f"{pr:.2f}",
                 round(d * w * w * (r / 224) ** 2, 2), round((ALPHA * BETA ** 2 * GAMMA ** 2) ** k, 2)])
  return Table(
      "EfficientNet compound scaling: α^φ, β^φ, γ^φ at φ = k vs the released B1–B7 (width, depth, resolution)",
      ["model", "φ", "rule: width, depth, res", "released: width, depth, res", "φ of width", "φ of depth",
       "φ of res", "FLOPs × (released d·w²·r²)", "FLOPs × (rule (αβ²γ²)^φ)"], rows,
      source="Tan & Le, ICML 2019, eq. 3 and §4 (α = 1.2, β = 1.1, γ = 1.15 from a grid search at φ = 1); released "
             "coefficients: jaxgen.models.efficientnet.COEFFICIENTS (the TF release's efficientnet_params, "
             "torchvision's the same)",
      notes=["The released models are not α^φ, β^φ, γ^φ at φ = 1…7: no single φ gives all three coefficients of a "
             "model. Solved for φ, the released widths give φ ≈ " + _phis(0) + ", the depths " + _phis(1) +
             " and the resolutions " + _phis(2) + " for B1…B7: width and resolution follow roughly φ ≈ 0.5, 1, 2, "
             "3.5, 5, 6, 7 (B1 keeps B0's width), depth lags from B4 on, and every coefficient is rounded (width "
             "and depth to 0.1, resolution to a multiple of 4).",
             "So the releases grow FLOPs (d·w²·r² relative to B0) more slowly than the rule at φ = k, "
             "(αβ²γ² = 1.92)^k: B1 1.26× instead of 1.92×, B7 89× instead of 96×. The paper says B1–B7 come from "
             "scaling B0 'with different φ' (§4); the released table is a set of hand-picked, rounded operating "
             "points, not integer φ.",
             "EfficientNet Table 2's FLOPs, parameter counts and the MACs counted on these coefficients: the "
             "'EfficientNet (Table 2)' table above."])


def _phis(i: int) -> str:
  from jaxgen.models.efficientnet import COEFFICIENTS
  return ", ".join(f"{implied_phi(*COEFFICIENTS[f'b{k}'][:3])[i]:.1f}" for k in range(1, 8))


class _NaiveInception:
  """Szegedy et al. 2015 Fig. 2(a): 1×1, 3×3 and 5×5 convs straight on the input and a 3×3 max-pool
  branch that passes all input channels on (built from jaxgen's GoogLeNet BasicConv, biased, no BN)."""

  def __new__(cls, c1, c3, c5):
    import flax.linen as nn
    import jax.numpy as jnp

    from jaxgen.models.cnn_layers import max_pool_ceil
    from jaxgen.models.googlenet import BasicConv

    class NaiveInception(nn.Module):
      @nn.compact
      def __call__(self, x):
        conv = lambda f, k, name: BasicConv(f, k, use_bn=False, name=name)   # noqa: E731
        return jnp.concatenate([conv(c1, 1, "b1")(x), conv(c3, 3, "b2_conv")(x), conv(c5, 5, "b3_conv")(x),
                                max_pool_ceil(x, 3, 1, 1)], axis=-1)

    return NaiveInception()


def inception_module_costs(side: int = 28, channels: int = 192) -> dict[str, dict]:
  """MACs, parameters and output channels of GoogLeNet's inception (3a) at side²×channels, naive (Fig. 2a)
  and with 1×1 reductions (Fig. 2b, the paper's true 5×5), each branch separately; counted by
  ``jaxgen.flops`` on the traced module."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxgen.models.googlenet import INCEPTION, Inception
  c1, r3, c3, r5, c5, pp = INCEPTION["3a"]
  x = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
  out = {}
  for name, module in (("naive", _NaiveInception(c1, c3, c5)),
                       ("reduced", Inception(INCEPTION["3a"], five=5, use_bn=False))):
    variables = jax.eval_shape(lambda m=module: m.init(jax.random.key(0), jnp.zeros(x.shape)))
    records = flops.jaxpr_macs(jax.make_jaxpr(lambda v, a, m=module: m.apply(v, a))(variables, x))
    per_branch: dict[str, int] = {}
    for scope, n in records:
      branch = next((b for b in ("b1", "b2", "b3", "b4") if f"/{b}" in f"/{scope}" or scope.startswith(b)), scope)
      per_branch[branch] = per_branch.get(branch, 0) + n
    shape = jax.eval_shape(lambda v, a, m=module: m.apply(v, a), variables, x).shape
    params = int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(variables["params"])))
    out[name] = dict(macs=sum(per_branch.values()), branches=per_branch, params=params, out_channels=shape[-1])
  return out


def inception_module() -> Table:
  c = inception_module_costs()
  n, r = c["naive"], c["reduced"]
  b = lambda d, k: d["branches"].get(k, 0) / 1e6   # noqa: E731
  rows = [["naive (Fig. 2a)", b(n, "b1"), b(n, "b2"), b(n, "b3"), 0.0, n["macs"] / 1e6, n["params"], n["out_channels"]],
          ["1×1 reductions (Fig. 2b)", b(r, "b1"), b(r, "b2"), b(r, "b3"), b(r, "b4"), r["macs"] / 1e6, r["params"],
           r["out_channels"]]]
  return Table(
      "GoogLeNet inception (3a) at 28×28×192: MMACs per branch, naive vs with 1×1 reductions",
      ["module", "1×1 (64)", "3×3 (128)", "5×5 (32)", "pool branch", "total MMACs", "params", "out channels"], rows,
      source="Szegedy et al. 2015 §4 and Fig. 2; Table 1 row inception (3a): #1×1 64, #3×3 reduce 96, #3×3 128, "
             "#5×5 reduce 16, #5×5 32, pool proj 32; counted with jaxgen.flops on jaxgen's GoogLeNet layers "
             "(the paper's true 5×5, biases, no BN)",
      notes=[f"The 1×1 reductions cut the module's cost {n['macs'] / r['macs']:.2f}× ({n['macs']:,} → {r['macs']:,} "
             f"MACs): the 5×5 branch alone falls from {b(n, 'b3'):.1f}M to {b(r, 'b3'):.1f}M (a 16-channel "
             "reduction before 25·32-tap filters), the 3×3 branch from "
             f"{b(n, 'b2'):.1f}M to {b(r, 'b2'):.1f}M.",
             f"The paper's second argument: the naive module's pooling branch passes all 192 input channels on, so "
             f"its output has {n['out_channels']} channels instead of {r['out_channels']}; stacked, the width and "
             "with it the next module's cost grow from stage to stage. The pool projection (1×1, 32) caps it.",
             "Analytic check: MACs = H·W·Σ k²·C_in·C_out over the convs — 784·(192·64 + 9·192·128 + 25·192·32) = "
             "303,464,448 (naive) and 784·(192·64 + 192·96 + 9·96·128 + 192·16 + 25·16·32 + 192·32) = 128,049,152."])


def tables(results: str | None = None) -> list[Table]:
  return [efficientnet(), mobilenet_v1(), mobilenet_v2_v3(), shufflenet(), googlenet_xception(),
          compound_scaling(), inception_module(), imagenet_top1(results)]
