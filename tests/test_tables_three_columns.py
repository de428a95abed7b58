"""The three-column evaluation tables (paper / converted weights / jaxgen-trained), the committed results
file they read, EfficientNet's compound scaling table and GoogLeNet's inception-module cost table."""

from __future__ import annotations

import json
import math

import pytest

from jaxgen.errors import ConfigError
from jaxgen.eval import results as res
from jaxgen.tables import NOT_RUN, backbones, diffusion, samplers, three_columns


def test_committed_results_file_has_every_row_and_only_provenanced_measurements():
  with open(res.COMMITTED, encoding="utf-8") as f:
    doc = res.validate(json.load(f), res.COMMITTED)
  assert [r["id"] for r in doc["rows"]] == [r.id for r in res.ROWS]
  for r, want in zip(doc["rows"], res.ROWS):
    assert r["paper"] == {"value": want.paper, "source": want.source} and r["table"] == want.table
    for col in res.COLUMNS:       # nothing is entered by hand: a measured cell says how it was measured
      m = r[col]
      if m is not None:
        assert m["command"].startswith(f"python -m jaxgen.eval.reproduce {want.table}")
        assert m["hardware"] and m["date"] and m["jax"] and "deviations" in m["details"]
  assert set(res.TABLES) == {r.table for r in res.ROWS}


def test_paper_values_and_their_sources():
  # torchvision weights meta 'acc@1' (IMAGENET1K_V1), checked against torchvision 0.29.1's model files
  top1 = {r.key: r.paper for r in res.rows_of("imagenet_top1")}
  assert top1 == {"mobilenet_v2": 71.878, "mobilenet_v3_large": 74.042, "mobilenet_v3_small": 67.668,
                  "shufflenet_v2_x1_0": 69.362, "shufflenet_v2_x0_5": 60.552, "googlenet": 69.778,
                  "efficientnet_b0": 77.692}
  # docs/reference.md §1 (EDM Table 2 config F) and §2 (DDIM η = 0; score_sde 2.99 bits/dim)
  edm = {r.key: r.paper for r in res.rows_of("edm_table2")}
  assert (edm["cifar10_cond_vp"], edm["cifar10_uncond_vp"], edm["ffhq64_uncond_vp"], edm["afhqv2_64_uncond_vp"],
          edm["imagenet64_cond_adm"]) == (1.79, 1.97, 2.39, 1.96, 1.36)
  assert [res.row(f"ddim_table/eta0_S{s}").paper for s in (10, 20, 50, 100, 1000)] == [13.36, 6.84, 4.67, 4.16, 4.04]
  assert res.row("score_sde_nll/cifar10_ddpmpp_deep_subvp").paper == 2.99
  # every row whose paper value is not verified here says so in its source
  assert all("not verified" in r.source for r in res.ROWS if r.paper is None)
  nfe = {r.key: r.spec["nfe"] for r in res.rows_of("edm_table2")}
  assert (nfe["cifar10_uncond_vp"], nfe["ffhq64_uncond_vp"], nfe["imagenet64_cond_adm"]) == (35, 79, 511)


def test_tables_print_not_run_until_a_measurement_is_recorded(tmp_path):
  for t in (diffusion.edm_table2(), diffusion.score_sde_nll(), samplers.ddim_table(), backbones.imagenet_top1()):
    assert t.columns[2:] == ["converted weights", "jaxgen-trained"]
    assert all(row[2] == NOT_RUN and row[3] == NOT_RUN for row in t.rows), t.title
    assert "not run" in t.render()
  # a results file with one measured cell (a test value, never a result): the table reads it
  path = str(tmp_path / "r.json")
  m = dict(value=2.5, command="python -m jaxgen.eval.reproduce edm_table2 --row cifar10_uncond_vp ...",
           date="2026-12-06T00:00:00Z", hardware="8 x cpu (cpu)", jax="0.10.2", jaxgen="abc",
           weights="/w/edm.npz", details=dict(deviations=["1000 samples per seed set (the protocol: 50,000)"]))
  res.record(path, "edm_table2/cifar10_uncond_vp", "converted", m)
  t = three_columns("edm_table2", "EDM", "src", results=path)
  row = next(r for r in t.rows if r[0].startswith("CIFAR-10 32², uncond., DDPM++"))
  assert row[1:] == ["1.97", "2.500*", NOT_RUN]
  text = t.render()
  assert "8 x cpu (cpu)" in text and "deviates: 1000 samples per seed set" in text and "edm.npz" in text
  # merge copies the measured cell only, into another file
  dst = str(tmp_path / "merged.json")
  assert res.merge(path, dst) == ["edm_table2/cifar10_uncond_vp:converted"]
  assert res.cell(res.load(dst), "edm_table2/cifar10_uncond_vp", "converted")["value"] == 2.5
  with pytest.raises(ConfigError, match="is the committed results file"):
    res.record(res.COMMITTED, "edm_table2/cifar10_uncond_vp", "converted", m)
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"schema": res.SCHEMA, "rows": [{"id": "x", "converted": {"value": 1.0}}]}))
  with pytest.raises(ConfigError, match="lacks .*command"):
    res.load(str(bad))
  with pytest.raises(ConfigError, match="did you mean 'edm_table2/cifar10_uncond_vp'"):
    res.row("edm_table2/cifar10_uncond_vpp")


def test_results_option_reaches_the_evaluation_tables():
  import inspect

  from jaxgen.tables import parse_args
  assert parse_args(["backbones", "--results", "r.json"]) == (["backbones"], {"results": "r.json"})
  for mod in (diffusion, samplers, backbones):     # jaxgen.tables.collect passes options by parameter name
    assert "results" in inspect.signature(mod.tables).parameters


def test_compound_scaling_rule_and_the_released_coefficients():
  w, d, r = backbones.compound_coefficients(1)
  assert (w, d, r) == pytest.approx((1.1, 1.2, 224 * 1.15))
  assert backbones.ALPHA * backbones.BETA ** 2 * backbones.GAMMA ** 2 == pytest.approx(1.92, abs=0.005)  # ≈ 2
  # B2 = (1.1, 1.2, 260) is the rule at φ = 1 in width and depth, φ ≈ 1.07 in resolution
  assert backbones.implied_phi(1.1, 1.2, 260) == pytest.approx((1.0, 1.0, math.log(260 / 224) / math.log(1.15)))
  t = backbones.compound_scaling()
  assert [row[0] for row in t.rows] == [f"B{k}" for k in range(1, 8)]
  b7 = t.rows[-1]
  assert b7[3] == "2.0, 3.1, 600" and b7[7] == pytest.approx(3.1 * 2.0 ** 2 * (600 / 224) ** 2, abs=0.01)   # d·w²·r²


def test_inception_module_cost_with_and_without_1x1_reductions():
  c = backbones.inception_module_costs()
  # H·W·Σ k²·C_in·C_out at 28×28×192 (inception 3a: 64 | 96→128 | 16→32 | pool→32)
  assert c["naive"]["macs"] == 784 * (192 * 64 + 9 * 192 * 128 + 25 * 192 * 32) == 303_464_448
  assert c["reduced"]["macs"] == 784 * (192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32)
  assert c["reduced"]["branches"]["b3"] == 784 * (192 * 16 + 25 * 16 * 32)
  assert (c["naive"]["out_channels"], c["reduced"]["out_channels"]) == (64 + 128 + 32 + 192, 256)
  assert "2.37×" in backbones.inception_module().render()
