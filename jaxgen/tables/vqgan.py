"""VQGAN first-stage tables: our networks against taming-transformers' modules, and the reconstruction FIDs.

``python -m jaxgen.tables vqgan``. Reference counts come from taming's modules (CompVis/taming-transformers,
HEAD 3ba01b2) built in torch with the same configurations: ``python
scripts/make_taming_fixture.py --counts`` (parameters: sum of ``numel`` over ``parameters()``; multiply-adds:
torch's ``FlopCounterMode`` on meta tensors, FLOPs / 2, at batch 1 and 256²). Ours: the ``params`` collection
of the registered model and ``jaxgen.flops.count_macs`` (a traced forward, nothing computed). Numerical
agreement with taming's code is tests/convert/test_taming_convert.py; docs/vqgan.md describes the networks.
"""

from __future__ import annotations

from jaxgen import flops
from jaxgen.tables import Table, deviation

# taming modules, counted by scripts/make_taming_fixture.py --counts
TAMING_PARAMS = {"vqgan_imagenet_f16_1024": 72_141_699, "vqgan_imagenet_f16_16384": 76_073_859,
                 "vqgan_tiny": 1_017_875, "patchgan": 2_765_633, "patchgan_actnorm": 2_766_529}
TAMING_ENCODER_MACS = 69_214_404_608       # encoder + quant_conv at 256²
TAMING_DECODER_MACS = 126_374_379_520      # post_quant_conv + decoder from 16×16×256
TAMING_PATCHGAN_MACS = 3_146_809_344
# Reconstruction FID (torch-fidelity, 256², ImageNet) of the released checkpoints: taming-transformers
# README, "Reconstruction-FIDs" rows (FID vs train, FID vs val); the paper's FID/val 7.94 and 4.98.
PAPER_RFID = {"vqgan_imagenet_f16_1024": (10.54, 7.94), "vqgan_imagenet_f16_16384": (7.41, 4.98)}


def _dev(ours: float, ref: float) -> str:
  return f"{deviation(ours, ref) * 100:+.2f}%"


def networks() -> Table:
  rows = []
  for name, k in (("vqgan_imagenet_f16_1024", 1024), ("vqgan_imagenet_f16_16384", 16384)):
    p = flops.param_count(name)
    # taming's VectorQuantizer2 forms the same N·K·D distance matmul (N = 16·16 latents, D = 256)
    ref_macs = TAMING_ENCODER_MACS + TAMING_DECODER_MACS + 256 * k * 256
    macs = flops.count_macs(name, 256)
    rows.append([name, "256² → 16×16", TAMING_PARAMS[name], p, _dev(p, TAMING_PARAMS[name]),
                 round(ref_macs / 1e9, 3), round(macs / 1e9, 3), _dev(macs, ref_macs)])
  p = flops.param_count("vqgan_tiny")
  ref = TAMING_PARAMS["vqgan_tiny"]
  rows.append(["vqgan_tiny", "32² → 8×8", ref, p, _dev(p, ref), "—",
               round(flops.count_macs("vqgan_tiny", 32) / 1e9, 3), "—"])
  for label, kw, ref in (("patchgan", {}, "patchgan"), ("patchgan (use_actnorm)", {"use_actnorm": True},
                                                          "patchgan_actnorm")):
    p = flops.param_count("patchgan", **kw)
    macs = flops.count_macs("patchgan", 256, **kw)
    rows.append([label, "256² → 30×30", TAMING_PARAMS[ref], p, _dev(p, TAMING_PARAMS[ref]),
                 round(TAMING_PATCHGAN_MACS / 1e9, 3), round(macs / 1e9, 3),
                 _dev(macs, TAMING_PATCHGAN_MACS)])
  return Table("VQGAN networks vs taming-transformers' modules (parameters; GMACs at batch 1)",
               ["model", "image → codes / logits", "params (taming)", "params (ours)", "dev",
                "GMACs (taming)", "GMACs (ours)", "dev"], rows,
               source="taming-transformers modules built in torch: scripts/make_taming_fixture.py --counts; "
                      "configs/imagenet_vqgan.yaml ddconfig; NLayerDiscriminator(3, 64, 3)",
               notes=["VQGAN GMACs = encoder + quant_conv (69.214) + post_quant_conv + decoder (126.374) "
                      "+ the codebook distance matmul 256·K·256 (0.067 for K=1024, 1.074 for K=16384), which "
                      "both implementations compute; counted taps include zero padding (papers' convention).",
                      "vqgan_tiny is jaxgen's CPU-scale configuration (ch 32, ch_mult 1,2,2, 1 res block, "
                      "attention at 8², 64 codes of dimension 16); its reference count comes from taming's "
                      "Encoder/Decoder with that ddconfig."])


def reconstruction() -> Table:
  rows = [[name, "ImageNet 256²", tr, val, "not measured"] for name, (tr, val) in PAPER_RFID.items()]
  return Table("VQGAN reconstruction FID (rFID) of the released first stages",
               ["model", "data", "rFID vs train (taming)", "rFID vs val (paper)", "rFID vs val (ours)"], rows,
               source="Esser et al., CVPR 2021 (FID/val); taming-transformers README 'Reconstruction-FIDs' "
                      "(torch-fidelity)",
               notes=["Ours needs a trained or converted first stage and ImageNet: convert a released "
                      "checkpoint with `python -m jaxgen.convert.taming last.ckpt vqgan.npz` and run the "
                      "`reconstruction` evaluator with rfid (docs/vqgan.md); no such run exists in this "
                      "repository (CPU only)."])


def tables() -> list[Table]:
  return [networks(), reconstruction()]
