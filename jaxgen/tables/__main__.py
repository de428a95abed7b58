"""``python -m jaxgen.tables [module ...]``: print every reproduced table (or those of the named modules)."""

import sys

from jaxgen.tables import collect, modules


def main(argv):
  unknown = [a for a in argv if a not in modules()]
  if unknown:
    sys.exit(f"unknown table module(s) {', '.join(unknown)}: choose from {', '.join(modules())}.")
  for t in collect(argv):
    print(t.render())
    print()


if __name__ == "__main__":
  main(sys.argv[1:])
