"""The metric library below training and the evaluation commands: registered metrics with their input contracts
(`scores`), FID (`fid`), verified metric weights (`weights`) and which way each metric is better (`ranking`)."""
