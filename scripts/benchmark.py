"""Thin launcher: same as `gan-color benchmark ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
