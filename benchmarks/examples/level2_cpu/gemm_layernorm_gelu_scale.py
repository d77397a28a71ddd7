import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Linear projection, LayerNorm over the features, GELU, then a constant scale."""

    def __init__(self, in_features, out_features, scaling_factor):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.layer_norm = nn.LayerNorm(out_features, eps=1e-5)
        self.scaling_factor = scaling_factor

    def forward(self, x):
        x = self.linear(x)
        x = self.layer_norm(x)
        x = F.gelu(x)
        x = x * self.scaling_factor
        return x


batch_size = 512
in_features = 32
out_features = 1024
scaling_factor = 2.0


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, scaling_factor]
