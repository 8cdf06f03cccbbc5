"""`mlp`: concatenation fusion with fully connected layers (the BERT + ResNet sentiment system)."""

from __future__ import annotations

from memeatlas.classify.heads.torch_common import TorchHead
from memeatlas.ranges import Range


class MlpHead(TorchHead):
    """[x_1 | x_2 | …] → FC(hidden) → ReLU → dropout → FC(hidden/2) → ReLU → FC(C)."""

    name = "mlp"
    DEFAULTS = {"hidden": 512, **TorchHead.TRAIN_DEFAULTS}
    RANGES = {"hidden": Range(2, 65_536, integer=True), **TorchHead.TRAIN_RANGES}

    def build(self, dims, n_classes):
        import torch
        from torch import nn

        h = int(self.params["hidden"])
        p = float(self.params["dropout"])

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(nn.Linear(sum(dims), h), nn.ReLU(), nn.Dropout(p),
                                          nn.Linear(h, h // 2), nn.ReLU(), nn.Dropout(p),
                                          nn.Linear(h // 2, n_classes))

            def forward(self, xs):
                return self.body(torch.cat(xs, dim=1))

        return Net()
