"""The benchmark's fixed yardstick: the upstream pix2pix colorization training step (junyanz/pytorch-CycleGAN-and-
pix2pix: models/networks.py, models/pix2pix_model.py), rewritten from the paper and the upstream definitions, fp32 and
eager. It shares no code with the project's models or objectives, so every speed-up stays a ratio against the same
step however the project's own layers change."""

from __future__ import annotations

import functools

import torch
from torch import nn


def _init(module: nn.Module) -> nn.Module:
    """Upstream `init_weights(init_type='normal', init_gain=0.02)`."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
    return module


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm_layer, use_bias: bool) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Upstream `ResnetGenerator(input_nc=1, output_nc=2, ngf, norm='instance', use_dropout=False, n_blocks)`."""

    def __init__(self, input_nc: int = 1, output_nc: int = 2, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        norm_layer = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
        use_bias = True  # upstream: norm_layer.func == nn.InstanceNorm2d
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                      norm_layer(ngf * mult * 2), nn.ReLU(True)]
        model += [ResnetBlock(ngf * 4, norm_layer, use_bias) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """Upstream `NLayerDiscriminator(input_nc=3, ndf, n_layers=3, norm='instance')`: the 70x70 PatchGAN."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        norm_layer = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
        use_bias = True
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=2, padding=1,
                                   bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=4, stride=1, padding=1, bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GANLoss(nn.Module):
    """Upstream `GANLoss('lsgan')`: MSE against a label buffer expanded to the prediction's shape."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.MSELoss()

    def __call__(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
        return self.loss(prediction, target)


class Pix2PixColorization:
    """Upstream `Pix2PixModel` as `ColorizationModel` trains it (real_A = L, real_B = ab): `optimize_parameters`,
    D first on the detached fake and the real pair, then G with D frozen; Adam(2e-4, betas 0.5/0.999), lambda_L1
    100."""

    def __init__(self, *, ngf: int = 64, ndf: int = 64, n_blocks: int = 9, device: torch.device | str = "cpu",
                 lr: float = 2e-4, lambda_l1: float = 100.0) -> None:
        self.netG = _init(ResnetGenerator(1, 2, ngf, n_blocks)).to(device)
        self.netD = _init(NLayerDiscriminator(3, ndf, 3)).to(device)
        self.criterionGAN = GANLoss().to(device)
        self.criterionL1 = nn.L1Loss()
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(0.5, 0.999))
        self.lambda_l1 = lambda_l1

    def set_input(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        self.real_A, self.real_B = real_a, real_b

    @staticmethod
    def set_requires_grad(net: nn.Module, requires_grad: bool) -> None:
        for param in net.parameters():
            param.requires_grad = requires_grad

    def backward_D(self) -> None:
        fake_ab = torch.cat((self.real_A, self.fake_B), 1)
        pred_fake = self.netD(fake_ab.detach())
        self.loss_D_fake = self.criterionGAN(pred_fake, False)
        real_ab = torch.cat((self.real_A, self.real_B), 1)
        pred_real = self.netD(real_ab)
        self.loss_D_real = self.criterionGAN(pred_real, True)
        self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        self.loss_D.backward()

    def backward_G(self) -> None:
        fake_ab = torch.cat((self.real_A, self.fake_B), 1)
        pred_fake = self.netD(fake_ab)
        self.loss_G_GAN = self.criterionGAN(pred_fake, True)
        self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.lambda_l1
        self.loss_G = self.loss_G_GAN + self.loss_G_L1
        self.loss_G.backward()

    def optimize_parameters(self) -> None:
        self.fake_B = self.netG(self.real_A)
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
        self.set_requires_grad(self.netD, False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
