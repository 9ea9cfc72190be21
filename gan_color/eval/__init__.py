"""Evaluation: registered metrics (`metrics`), FID (`fid`), `gan-color evaluate` (`evaluate`), `gan-color compare`
(`compare`), W&B reporting (`wandb_report`) and human evaluation (`human_eval`)."""
