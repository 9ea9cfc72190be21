"""Which way each headline metric is better and the one order of metric columns, shared by every table and plot
(`compare`, W&B reports, the results page)."""

from __future__ import annotations

# (metric key prefix, higher is better) in table/plot order; fid keys carry their sample count (fid100, fid10k).
MAIN_METRICS = (("psnr_rgb_uint8", True), ("ssim_rgb_uint8", True), ("lpips_alex", False), ("lpips_vgg", False),
                ("fid", False), ("auc_ab_0_150", True), ("delta_colorfulness", False), ("bin_accuracy", True))


def _main_index(key: str) -> int | None:
    """Position of `key` in MAIN_METRICS (fid100, fid10k... match "fid"), or None."""
    for i, (prefix, _) in enumerate(MAIN_METRICS):
        if key == prefix or (prefix == "fid" and key.startswith("fid") and key[3:4].isdigit()):
            return i
    return None


def sort_metric_keys(keys: list[str]) -> list[str]:
    """`keys` with the main metrics first, in MAIN_METRICS order, then the rest as given."""
    return sorted(keys, key=lambda key: len(MAIN_METRICS) if _main_index(key) is None else _main_index(key))


def metric_direction(key: str) -> bool | None:
    """True if higher is better, False if lower, None for keys that are not ranked (colorfulness, counts)."""
    index = _main_index(key)
    return None if index is None else MAIN_METRICS[index][1]
