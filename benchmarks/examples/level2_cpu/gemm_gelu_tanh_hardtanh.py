import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """A narrow linear layer followed by a chain of activations and an affine tweak."""

    def __init__(self, in_features, out_features, scale):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = scale
        self.shift = nn.Parameter(torch.randn(out_features) * 0.1)

    def forward(self, x):
        x = self.linear(x)
        x = F.gelu(x)
        x = x * self.scale + self.shift
        x = torch.tanh(x)
        x = F.hardtanh(x, min_val=-0.5, max_val=0.5)
        return x


batch_size = 256
in_features = 32
out_features = 2048
scale = 1.7


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, scale]
