"""The evaluation commands: `gan-color evaluate` (`evaluate`, its images in `images`), `gan-color compare` (`compare`),
W&B reporting (`wandb_report`) and `gan-color human-eval` (`human_eval`). The metrics are `gan_color.metrics`."""
