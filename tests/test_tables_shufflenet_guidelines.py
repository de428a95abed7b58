"""``python -m jaxgen.tables shufflenet_guidelines``: the verdicts it draws from a results file (docs/speed.md).
Synthetic speeds only — the committed measurements are rendered, never asserted."""

import json

from jaxgen.tables import shufflenet_guidelines as sg


def _row(exp, cell, label, ips, batch=1):
  return dict(exp=exp, cell=cell, label=label, config="c=8", batch=batch, macs_per_image=10**6, ms=1.0,
              images_per_s=ips, calls=4)


def test_holds_is_the_recommended_configuration_being_fastest_within_the_margin():
  g1 = [_row("g1", "×1", r, v) for r, v in (("1:1", 10.0), ("1:2", 10.4), ("1:6", 7.0))]
  assert sg.holds("g1", g1)                           # 10.4 is within 5% of 10.0
  g1[1]["images_per_s"] = 11.0
  assert not sg.holds("g1", g1)
  g4 = [_row("g4", "c=32", lab, v) for lab, v in (("ReLU yes, shortcut yes", 10.0), ("ReLU no, shortcut yes", 12.0),
                                                 ("ReLU yes, shortcut no", 12.0), ("ReLU no, shortcut no", 10.4))]
  assert not sg.holds("g4", g4)                       # +4%: not beyond the margin
  g4[3]["images_per_s"] = 12.0
  assert sg.holds("g4", g4)


def test_tables_render_a_results_file_and_say_when_there_is_none(tmp_path, monkeypatch):
  monkeypatch.setenv(sg.ENV, str(tmp_path / "missing.json"))
  (t,) = sg.tables()
  assert all(r[1] == "not run" for r in t.rows) and "benchmarks/shufflenet_guidelines.py" in t.notes[0]
  rows = [_row("g2", "×1", "g=1", 9.0), _row("g2", "×1", "g=2", 4.5), _row("g2", "×1", "g=1", 3.0, batch=8),
          _row("g2", "×1", "g=2", 3.3, batch=8)]
  data = dict(date="2026-01-01 00:00 UTC", machine=dict(cpu="test", cores=2, backend="cpu"), jax="0", rounds=1,
              iters=1, load_before=[1.0], load_after=[1.0], rows=rows)
  path = tmp_path / "g.json"
  path.write_text(json.dumps(data))
  monkeypatch.setenv(sg.ENV, str(path))
  summary, g2 = sg.tables()
  assert summary.rows[0][:3] == ["G2", "excessive group convolution increases MAC", "1/2"]
  assert [r[-1] for r in g2.rows] == ["holds", "", "does not hold", ""]
  assert [r[7] for r in g2.rows] == [1.0, 0.5, 1.0, 1.1]    # speed relative to the cell's g=1
  assert all(r[5] == "—" for r in g2.rows)                 # no paper number quoted from memory
  assert "holds in 1 of 2 cells" in " ".join(g2.notes)
  g2.render()
