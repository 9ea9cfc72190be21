"""Thin launcher: same as `gan-color human-eval ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["human-eval", *sys.argv[1:]]))
