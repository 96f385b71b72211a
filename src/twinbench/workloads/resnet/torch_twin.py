"""``resnet`` in PyTorch, laid out as torchvision's ResNet (same module names, same state_dict).

A torchvision ``resnet18``/``resnet50`` state_dict loads into the matching size (the CIFAR stem
of ``tiny``/``small`` has a 3×3 ``conv1``). The twin receives NCHW images: the backend permutes
the NHWC data stream (the workload's ``image_keys``) before the model sees it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1  # torch's default, written out: the JAX twin's BatchNorm reproduces it
BN_EPS = 1e-5


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


def batch_norm(planes: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(planes, eps=BN_EPS, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = batch_norm(planes)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        activated: torch.Tensor = self.relu(out + identity)
        return activated


class Bottleneck(nn.Module):
    """ResNet v1.5: the stride sits on the 3×3 conv, as in torchvision."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = batch_norm(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = batch_norm(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = batch_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        activated: torch.Tensor = self.relu(out + identity)
        return activated


def _downsample(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), batch_norm(outplanes))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        widths: Sequence[int],
        stem: str,
        num_classes: int,
    ) -> None:
        super().__init__()
        block_class = BLOCKS[block]
        self.inplanes = widths[0]
        if stem == "imagenet":  # 7×7/2 conv + 3×3/2 max pool: 224 → 56
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:  # CIFAR: 3×3/1 conv, no pool, so 32×32 inputs keep their resolution
            self.conv1 = conv3x3(3, self.inplanes)
            self.maxpool = nn.Identity()
        self.bn1 = batch_norm(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block_class, widths[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block_class, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block_class, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block_class, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block_class.expansion, num_classes)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, classes)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        logits: torch.Tensor = self.fc(torch.flatten(self.avgpool(x), 1))
        return logits


def build(config: Mapping[str, Any]) -> ResNet:
    return ResNet(
        config["block"], config["layers"], config["widths"], config["stem"], config["num_classes"]
    )


def forward(model: ResNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits: torch.Tensor = model(batch["x"])
    return logits


def loss_fn(model: ResNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(forward(model, batch), batch["y"])
