import torch

from core.calibration import fit_temperature


def test_recovers_overconfidence():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 2)
    labels = torch.distributions.Categorical(logits=true_logits).sample()
    temperature = fit_temperature(true_logits * 3.0, labels)
    assert abs(temperature - 3.0) < 0.3


def test_empty_input():
    assert fit_temperature(torch.empty(0, 2), torch.empty(0, dtype=torch.long)) == 1.0
