import torch
import torch.nn as nn


class Model(nn.Module):
    """Linear layer, temperature scaling, softmax over the features, then a learned
    per-feature offset."""

    def __init__(self, in_features, out_features, temperature):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.temperature = temperature
        self.offset = nn.Parameter(torch.randn(out_features) * 0.01)

    def forward(self, x):
        x = self.fc(x)
        x = x / self.temperature
        x = torch.softmax(x, dim=-1)
        x = x * 10.0 + self.offset
        return x


batch_size = 512
in_features = 32
out_features = 1024
temperature = 0.7


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features, temperature]
