"""Offline converters of published weights into jaxgen's ``.npz`` layouts (torch is optional).

- ``python -m jaxgen.convert.inception pt_inception-2015-12-05-6726825d.pth inception_fid.npz``
- ``python -m jaxgen.convert.taming last.ckpt vqgan.npz`` (taming-transformers VQGAN / PatchGAN /
  Net2NetTransformer checkpoints; docs/vqgan.md)
- ``python -m jaxgen.convert.edm edm-cifar10-32x32-cond-vp.pkl edm.npz [--model NAME]`` (EDM network pickles,
  read by a restricted unpickler that never runs their embedded source; DDPM++/NCSN++/ADM, VP/VE/EDM/iDDPM)
- ``python -m jaxgen.convert.ddpm diffusion_pytorch_model.safetensors ddpm.npz`` (google/ddpm-cifar10-32,
  diffusers safetensors parsed with numpy)
- ``python -m jaxgen.convert.score_sde checkpoint_N.pth sde.npz --config subvp/cifar10_ddpmpp_deep_continuous``
  (score_sde_pytorch NCSN++/DDPM++ checkpoints, EMA weights; torch.load(weights_only=True) or a torch-free
  reader; docs/convert.md "## score_sde")
- ``python -m jaxgen.convert.torchvision mobilenet_v2-b0353104.pth mobilenet_v2.npz --model mobilenet_v2``
  (torchvision MobileNetV2/V3, ShuffleNetV2, GoogLeNet state dicts: .pth without torch too, .safetensors;
  docs/convert.md)
- ``python -m jaxgen.convert.efficientnet efficientnet_b0_rwightman-7f5810bc.pth b0.npz`` (torchvision
  EfficientNet, or a Keras ``.weights.h5``: the two faithful variants, docs/convert.md)
- ``python -m jaxgen.convert.timm legacy_xception.pth xception.npz`` (timm's legacy_xception)

A converted file starts a run through ``--config.model.init_from=OUT`` (diffusion and classification tasks;
the converter prints the model.name / model.overrides / task.precond to use).
"""
