import torch
import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    """Linear layer, log-softmax over the classes, clamped from below."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x):
        x = self.linear(x)
        x = F.log_softmax(x, dim=1)
        x = torch.clamp(x, min=-10.0)
        return x


batch_size = 512
in_features = 32
num_classes = 1000


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, num_classes]
