"""Regression and classification colorization baselines, trained by gan_color's loop (no second training loop).

Importing this package registers its networks (BASELINE_NETWORKS), losses (LOSSES) and objectives (OBJECTIVES);
gan_color imports it lazily through the `gan_color.plugins` entry point.
"""

from baselines import classification, classification_networks, regression, regression_networks, resnet  # noqa: F401
