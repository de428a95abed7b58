"""``python -m jaxgen.tables [module ...] [--out DIR] [--workdir RUN] [--results FILE]``: print every
reproduced table (or those of the named modules); ``--out DIR`` is where modules that draw a figure
(``samplers``) save it, ``--workdir RUN`` a trained run whose network a module measures (``samplers``), and
``--results FILE`` the results file the evaluation tables read instead of results/converted.json
(docs/reproduce.md)."""

import sys

from jaxgen.tables import collect, modules, parse_args


def main(argv):
  names, options = parse_args(argv)
  unknown = [a for a in names if a not in modules()]
  if unknown:
    sys.exit(f"unknown table module(s) {', '.join(unknown)}: choose from {', '.join(modules())}.")
  for t in collect(names, **options):
    print(t.render())
    print()


if __name__ == "__main__":
  main(sys.argv[1:])
