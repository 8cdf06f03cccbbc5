"""`adapter`: the MemeCLIP head — projection, residual adapter, product fusion, cosine classifier.

Per space s (frozen features x_s):

    z_s = P_s x_s                                   linear projection to `hidden` (orthogonal init)
    z_s = α · A_s(z_s) + (1 − α) · z_s              residual bottleneck adapter, ratio α = 0.2
    z_s = z_s / ‖z_s‖
    f   = z_1 ⊙ z_2 (⊙ …)                           element-wise product fusion (one space: f = z_1)
    logit_c = scale · cos(f, w_c)                   cosine classifier, scale 30

With `init=names` the classifier starts from the class names: w_c is the first text space's branch
applied to the embedding of the class name (encoded with that space's own model), times the mean
of the other branches over the training memes when spaces are fused. Because P_s starts
orthogonal, cos(branch(x), branch(name_c)) ≈ cos(x, name_c) before any training: a zero-shot
classifier that the few labelled examples then refine.
"""

from __future__ import annotations

import numpy as np

from memeatlas.classify.heads.torch_common import TorchHead
from memeatlas.ranges import Range


class AdapterHead(TorchHead):
    """MemeCLIP: projection + residual adapter per space, product fusion, cosine classifier."""

    name = "adapter"
    uses_class_names = True
    DEFAULTS = {"hidden": 256, "ratio": 0.2, "scale": 30.0, "init": "names", **TorchHead.TRAIN_DEFAULTS}
    RANGES = {"hidden": Range(4, 65_536, integer=True), "ratio": Range(0, 1),
              "scale": Range(0, 1000, lo_open=True), "init": ("names", "random"),
              **TorchHead.TRAIN_RANGES}

    def build(self, dims, n_classes):
        import torch
        import torch.nn.functional as F
        from torch import nn

        h = int(self.params["hidden"])
        ratio = float(self.params["ratio"])
        scale = float(self.params["scale"])
        p = float(self.params["dropout"])

        class Branch(nn.Module):
            def __init__(self, d: int) -> None:
                super().__init__()
                self.proj = nn.Linear(d, h)
                nn.init.orthogonal_(self.proj.weight)
                nn.init.zeros_(self.proj.bias)
                self.adapter = nn.Sequential(nn.Linear(h, h // 4), nn.ReLU(), nn.Linear(h // 4, h), nn.ReLU())

            def forward(self, x):
                z = self.proj(x)
                z = ratio * self.adapter(z) + (1 - ratio) * z
                return F.normalize(z, dim=1)

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.branches = nn.ModuleList(Branch(d) for d in dims)
                self.drop = nn.Dropout(p)
                self.weight = nn.Parameter(torch.randn(n_classes, h) / h ** 0.5)

            def fuse(self, xs):
                f = None
                for b, x in zip(self.branches, xs, strict=True):
                    z = b(x)
                    f = z if f is None else f * z
                return f

            def forward(self, xs):
                f = self.drop(self.fuse(xs))
                return scale * F.normalize(f, dim=1) @ F.normalize(self.weight, dim=1).T

        return Net()

    def initialise(self, net, Xs, y, class_name_vectors) -> None:
        import torch

        self.info["init"] = "random"
        if self.params["init"] != "names" or not class_name_vectors:
            return
        first = next((i for i, v in enumerate(class_name_vectors) if v is not None), None)
        if first is None:
            return
        with torch.no_grad():
            w = net.branches[first](torch.from_numpy(np.asarray(class_name_vectors[first], np.float32)))
            for i, (b, x) in enumerate(zip(net.branches, Xs, strict=True)):
                if i != first:
                    w = w * b(torch.from_numpy(x)).mean(dim=0, keepdim=True)
            net.weight.copy_(w)
        self.info["init"] = f"names (space {first})"
