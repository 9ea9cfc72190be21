"""`gan-color benchmark`: images/s of the training step (GAN and baselines), the data pipeline and colorize, each next
to a baseline measured in the same run (the upstream pix2pix step, per-image scikit-image Lab, the network alone).
`settings` (what is measured), `cases`, `steps`, `loading`, `colorizing` (the sections), `clock`, `report`, `runner`
and `command` (the CLI)."""
