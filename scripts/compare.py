"""Thin launcher: same as `gan-color compare ...`."""

import sys

from gan_color.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
