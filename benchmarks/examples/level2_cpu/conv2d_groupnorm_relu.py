import torch
import torch.nn as nn


class Model(nn.Module):
    """A thin 3x3 convolution (three input channels), then GroupNorm and a ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size, num_groups):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.gn = nn.GroupNorm(num_groups, out_channels)

    def forward(self, x):
        x = self.conv(x)
        x = self.gn(x)
        x = torch.relu(x)
        return x


batch_size = 16
in_channels = 3
out_channels = 32
height = width = 48
kernel_size = 3
num_groups = 8


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size, num_groups]
