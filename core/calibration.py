"""Temperature scaling (Guo et al. 2017): one scalar that calibrates the logits."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """Find the temperature ``T`` minimising the NLL of ``softmax(logits / T)``.

    Args:
        logits: ``(N, C)`` validation logits.
        labels: ``(N,)`` integer labels.

    Returns:
        ``T`` (> 0); 1.0 when there is nothing to fit.
    """
    if logits.numel() == 0:
        return 1.0
    logits = logits.detach().float().clone()  # may come from inference mode
    labels = labels.detach().long().clone()
    log_t = torch.zeros(1, requires_grad=True)  # optimise log T so T stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = log_t.exp().item()
    return temperature if 0.05 < temperature < 20 else 1.0
