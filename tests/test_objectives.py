"""The pix2pix objective's D step: one batched D call where that is exact, two calls where D mixes samples."""

from __future__ import annotations

import pytest
import torch

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
