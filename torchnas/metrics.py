"""What an architecture costs and how promising it looks, measured on the built model
(``tn.metrics``).

Cost, all measured on a real model: :func:`params` (trainable parameters), :func:`flops`
(per-sample FLOPs of a forward pass, counted by ``torch.utils.flop_counter``; a multiply-add is
2), :func:`peak_memory` (bytes a forward, or forward + backward, pass allocates at its peak),
:func:`latency` (median milliseconds of a forward pass on the target device). Zero-cost proxies
(:data:`PROXIES`: ``synflow``, ``snip``, ``grad_norm``, ``naswot``, ``jacob_cov``) score an
untrained network with :func:`proxy`.

In :class:`~torchnas.ModelSearch` they are metrics by name: ``params``, ``flops``,
``peak_memory``, ``latency_ms`` and each proxy's name, usable as objectives and constraints.

Example:
    >>> import torch
    >>> import torchnas as tn
    >>> net = torch.nn.Sequential(torch.nn.Linear(40, 16), torch.nn.ReLU(),
    ...                           torch.nn.Linear(16, 10))
    >>> tn.metrics.params(net), tn.metrics.flops(net, torch.zeros(1, 40))
    (826, 1600.0)
    >>> tn.metrics.latency(net, torch.zeros(1, 40), repeats=5) > 0
    True
"""

from __future__ import annotations

from torchnas.evaluation._cost import COST_METRICS, flops, latency, params, peak_memory
from torchnas.evaluation._proxies import PROXIES, proxy

__all__ = ["COST_METRICS", "PROXIES", "flops", "latency", "params", "peak_memory", "proxy"]
