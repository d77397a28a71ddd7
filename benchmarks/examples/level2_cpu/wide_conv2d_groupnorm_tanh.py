import torch
import torch.nn as nn


class Model(nn.Module):
    """A wide 3x3 convolution (64 -> 64 channels), then GroupNorm and tanh: the
    convolution dominates."""

    def __init__(self, in_channels, out_channels, kernel_size, num_groups):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=1)
        self.gn = nn.GroupNorm(num_groups, out_channels)

    def forward(self, x):
        x = self.conv(x)
        x = self.gn(x)
        x = torch.tanh(x)
        return x


batch_size = 8
in_channels = 64
out_channels = 64
height = width = 24
kernel_size = 3
num_groups = 16


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, num_groups]
