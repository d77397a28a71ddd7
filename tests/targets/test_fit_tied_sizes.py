"""--fit auto halves sizes that must stay equal together: upstream level-1 HingeLoss multiplies a
(batch, n) tensor by a (batch,) one with batch == n, so halving either alone breaks the task and
the fit used to give up ("too big for this machine")."""
from kopt.agent.targets.kernelbench.size_probe import _tied_step
from kopt.agent.targets.kernelbench.sizes import size_constants

TIED = """
import torch
class Model(torch.nn.Module):
    def forward(self, p, t):
        return torch.clamp(1 - p * t, min=0).mean()
batch_size = 4096
input_shape = (4096,)
other = 512
def get_inputs():
    return [torch.rand(batch_size, *input_shape), torch.rand(batch_size), torch.rand(other)]
def get_init_inputs():
    return []
"""


def test_a_broken_step_is_widened_to_the_constants_of_equal_value():
    constants = size_constants(TIED)
    prev = {c.name: c.value for c in constants}
    step = {**prev, "batch_size": 2048}
    widened = _tied_step(constants, prev, step, frozen=set())
    assert widened == {**step, "input_shape[0]": 2048}
    assert widened["other"] == 512


def test_nothing_to_widen_and_frozen_constants_stay():
    constants = size_constants(TIED)
    prev = {c.name: c.value for c in constants}
    assert _tied_step(constants, prev, {**prev, "other": 256}, frozen=set()) is None
    assert _tied_step(constants, prev, {**prev, "batch_size": 2048}, frozen={"input_shape[0]"}) is None
