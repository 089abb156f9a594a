"""The torch backend: eager PyTorch on a CPU or a CUDA device."""

from __future__ import annotations

import numpy as np
import torch

from edgecodec.nn import HQAStack


class TorchBackend:
    name = "torch"

    def __init__(self, net: HQAStack, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.multiple = net.multiple
        self.num_layers = net.num_layers

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        enc = self.net.encode(torch.from_numpy(frames).to(self.device))
        return [i.cpu().numpy() for i in enc.ids], enc.qerr.cpu().numpy()

    @torch.inference_mode()
    def decode(self, ids: np.ndarray, layer: int) -> np.ndarray:
        return self.net.decode(torch.from_numpy(ids).to(self.device), layer).cpu().numpy()
