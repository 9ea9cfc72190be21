"""Regenerate docs/results.md: split an image folder, train the GAN and every baseline for the same budget, evaluate
all on the held-out images, write the table and sample sheets (see `--help` and gan_color/tools/results/)."""

import sys

from gan_color.tools.results.command import main

if __name__ == "__main__":
    sys.exit(main())
