"""The pix2pix objective's D step: one batched D call where that is exact, two calls where D mixes samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from gan_color import ab_prior, color, train
from gan_color.config import load_config
from gan_color.data import EmbeddedDataset
from gan_color.models import build_discriminator
from gan_color.objectives import Pix2PixObjective, batch_dependent


@pytest.mark.parametrize(("norm", "mixes"), [("instance", False), ("none", False), ("batch", True)])
def test_discriminate_matches_two_separate_calls(norm, mixes):
    torch.manual_seed(0)
    discriminator = build_discriminator("patchgan", ndf=8, norm=norm)
    gray_l, fake_ab, real_ab = torch.randn(3, 1, 32, 32), torch.randn(3, 2, 32, 32), torch.randn(3, 2, 32, 32)
    assert batch_dependent(discriminator) == mixes
    pred_fake, pred_real = Pix2PixObjective.discriminate(discriminator, gray_l, fake_ab, real_ab)
    torch.testing.assert_close(pred_fake, discriminator(gray_l, fake_ab))
    torch.testing.assert_close(pred_real, discriminator(gray_l, real_ab))
    if mixes:  # the reason for two calls: one batch of fakes and reals would normalise them together
        together = discriminator(torch.cat([gray_l, gray_l]), torch.cat([fake_ab, real_ab])).chunk(2)[0]
        assert not torch.allclose(together, pred_fake, atol=1e-4)
    discriminator.eval()  # running statistics: samples no longer interact
    assert not batch_dependent(discriminator)


def test_rebalanced_l1_is_plain_l1_at_lam_1_and_weighs_rare_colours_more(tmp_path):
    torch.manual_seed(0)
    fake_ab, real_ab = torch.rand(2, 2, 16, 16) - 0.5, torch.rand(2, 2, 16, 16) - 0.5
    plain = Pix2PixObjective()
    assert plain.prepare(dataset=[], run_dir=tmp_path, accelerator=None) == {}
    assert torch.equal(plain.l1(fake_ab, real_ab), torch.nn.functional.l1_loss(fake_ab, real_ab))

    rebalanced = Pix2PixObjective(rebalance_lam=0.5, prior_images=4)
    with pytest.raises(RuntimeError, match="needs the ab prior"):
        rebalanced.l1(fake_ab, real_ab)
    dataset = EmbeddedDataset(size=32, train=True, to_lab=False, length=8)
    logged = rebalanced.prepare(dataset=dataset, run_dir=tmp_path, accelerator=Accelerator(cpu=True))
    assert logged["prior/images"] == 4 and logged["prior/cached"] == 0 and (tmp_path / ab_prior.PRIOR_FILE).is_file()
    again = Pix2PixObjective(rebalance_lam=0.5, prior_images=4)  # a resumed run reads the same prior back
    assert again.prepare(dataset=dataset, run_dir=tmp_path, accelerator=Accelerator(cpu=True))["prior/cached"] == 1
    assert torch.equal(again.weights, rebalanced.weights)

    # The same error costs more on a rare, saturated colour than on a common near-grey one.
    grey, saturated = torch.zeros(1, 2, 4, 4), color.normalize_ab(torch.tensor([60.0, -60.0]).view(1, 2, 1, 1))
    saturated = saturated.expand(1, 2, 4, 4)
    error = torch.full((1, 2, 4, 4), 0.1)
    assert rebalanced.l1(saturated + error, saturated) > 2 * rebalanced.l1(grey + error, grey)
    with pytest.raises(ValueError, match="rebalance_lam"):
        Pix2PixObjective(rebalance_lam=1.5)


def test_a_rebalanced_run_trains_logs_its_prior_and_resumes(tmp_path):
    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny_cpu.yaml"
    overrides = [f"train.output_dir={tmp_path}", "name=rebalanced", "objective.kwargs.rebalance_lam=0.5",
                 "objective.kwargs.prior_images=4", "optim.decay_steps=0"]
    run = train.main(load_config(tiny, [*overrides, "optim.steps=2"]))
    train.main(load_config(tiny, [*overrides, "optim.steps=3"]))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["prior/cached"]) for r in rows if "prior/cached" in r] == [(0, 0), (2, 1)]
    assert all(v == v for r in rows for k, v in r.items() if k.startswith("loss/"))  # finite (not NaN)
