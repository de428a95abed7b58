"""Efficient-CNN tables: the papers' parameter and multiply-add counts beside ours.

``python -m jaxgen.tables backbones``. Our numbers come from ``jaxgen.flops`` (a traced forward at
batch 1, no computation) and the ``params`` collection of the registered model. Deviations over 2%
are flagged with ``*`` and explained in the table notes. Papers round to 2–3 significant figures.
"""

from __future__ import annotations

from jaxgen import flops
from jaxgen.tables import Table, deviation

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


def tables() -> list[Table]:
  return [efficientnet(), mobilenet_v1(), mobilenet_v2_v3(), shufflenet(), googlenet_xception()]
