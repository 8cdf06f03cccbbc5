"""The training loop the torch heads share: seeded, class-weighted cross-entropy, AdamW, CPU or GPU."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from memeatlas.classify.heads.base import Head, balanced_class_weight
from memeatlas.errors import InputError
from memeatlas.ranges import Range


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op CPU threads (0/None: torch's default), restoring the old count.

    These heads multiply small matrices: on a busy or small machine the cost of synchronising
    threads exceeds the work (measured 1.8 ms/step with one thread, 85 ms with two on 2 shared cores).
    """
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def pick_device(wanted: str | None) -> str:
    import torch

    if wanted and wanted != "auto":
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchHead(Head):
    """A head whose network comes from `build(dims, n_classes)`; weights pickle as numpy arrays."""

    TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4,
                                      "dropout": 0.1, "device": "auto", "threads": 1}
    TRAIN_RANGES: dict[str, Range] = {
        "epochs": Range(1, 10_000, integer=True), "batch_size": Range(1, 1_000_000, integer=True),
        "lr": Range(0, 10, lo_open=True), "weight_decay": Range(0, 10),
        "dropout": Range(0, 1, hi_open=True), "threads": Range(0, 1024, integer=True)}

    @classmethod
    def check_param(cls, key: str, value: Any) -> Any:
        if key == "device":  # torch's own error for 'gpu' is a traceback deep in training
            v = str(value).strip()
            if not re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,3})?", v):
                raise InputError(f"{cls.name} parameter device must be auto, cpu, mps, cuda or "
                                 f"cuda:N, got {v[:40]!r}")
            return v
        return super().check_param(key, value)

    def build(self, dims: list[int], n_classes: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def initialise(self, net, Xs, y, class_name_vectors) -> None:
        """Hook for heads that set weights before training (class-name initialisation)."""

    def fit(self, Xs, y, n_classes, *, class_weight=None, seed=0, class_name_vectors=None):
        with torch_threads(self.params.get("threads")):
            return self._fit(Xs, y, n_classes, class_weight=class_weight, seed=seed,
                             class_name_vectors=class_name_vectors)

    def _fit(self, Xs, y, n_classes, *, class_weight=None, seed=0, class_name_vectors=None):
        import torch

        Xs = self._check(Xs)
        self.dims = [x.shape[1] for x in Xs]
        self.n_classes = n_classes
        y = np.asarray(y, dtype=np.int64)
        torch.manual_seed(seed)
        self.info = {}
        net = self.build(self.dims, n_classes)
        self.initialise(net, Xs, y, class_name_vectors)
        device = pick_device(self.params["device"])
        net.to(device)
        w = class_weight if class_weight is not None else balanced_class_weight(y, n_classes)
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=device))
        opt = torch.optim.AdamW(net.parameters(), lr=float(self.params["lr"]),
                                weight_decay=float(self.params["weight_decay"]))
        tx = [torch.from_numpy(x).to(device) for x in Xs]
        ty = torch.from_numpy(y).to(device)
        gen = torch.Generator().manual_seed(seed)  # shuffling order independent of global RNG use
        bs = int(self.params["batch_size"])
        net.train()
        losses = []
        for _ in range(int(self.params["epochs"])):
            order = torch.randperm(len(y), generator=gen).to(device)
            total = 0.0
            for start in range(0, len(y), bs):
                idx = order[start:start + bs]
                opt.zero_grad()
                loss = loss_fn(net([t[idx] for t in tx]), ty[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / len(y))
        self.info.update({"final_loss": round(losses[-1], 5) if losses else None, "device": device})
        self.state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        self._net = None
        return self

    def _network(self):
        import torch

        net = getattr(self, "_net", None)
        if net is None:
            net = self.build(self.dims, self.n_classes)
            net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
            net.eval()
            self._net = net
        return net

    def predict_proba(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        Xs = self._check(Xs)
        net = self._network()
        out = []
        with torch_threads(self.params.get("threads")), torch.no_grad():
            for start in range(0, len(Xs[0]), 4096):
                logits = net([torch.from_numpy(x[start:start + 4096]) for x in Xs])
                out.append(torch.softmax(logits, dim=1).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.n_classes))

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_net"] = None  # rebuilt from `state` on first use
        return d
