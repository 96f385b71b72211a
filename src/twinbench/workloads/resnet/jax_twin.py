"""``resnet`` in JAX with Flax NNX, NHWC throughout, with torchvision's attribute names.

Two things differ from a stock Flax ResNet, both for parity with PyTorch:

* every conv gets explicit symmetric padding: ``nnx.Conv``'s default ``'SAME'`` pads a strided
  3×3 conv (0, 1) instead of torch's (1, 1), which shifts every strided layer's output;
* ``BatchNorm`` below replaces ``nnx.BatchNorm``, whose running variance is an average of *biased*
  batch variances; torch averages *unbiased* ones (× n/(n−1)), so the two running statistics — and
  every eval-mode output — would drift apart after the first train step.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

BN_MOMENTUM = 0.1  # torch convention: new = (1 - m)·old + m·batch
BN_EPS = 1e-5


class BatchNorm(nnx.Module):
    """BatchNorm over the last (channel) axis with PyTorch's running-statistics rule.

    Train mode normalises with the batch mean and *biased* batch variance and updates the running
    ``mean``/``var`` with momentum ``m``, feeding the *unbiased* variance into ``var``;
    ``model.eval()`` sets ``use_running_average`` and the running statistics are used instead.
    (`twinbench.converters.batchnorm_running_update` is the same rule in NumPy; it recomputes the
    statistics from ``x``, so here the rule is written out on the statistics already at hand.)
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = BN_MOMENTUM,
        epsilon: float = BN_EPS,
        use_running_average: bool = False,
    ) -> None:
        self.scale = nnx.Param(jnp.ones((num_features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((num_features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))
        self.momentum = momentum
        self.epsilon = epsilon
        self.use_running_average = use_running_average

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, H, W, C) -> (B, H, W, C)
        # Statistics in float32 at least, for bfloat16 activations too.
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))  # every axis but the channels
            mean, var = xf.mean(axes), xf.var(axes)  # biased variance: what train mode uses
            n = x.size // x.shape[-1]  # values per channel (validate() refuses n = 1)
            m = self.momentum
            old_mean, old_var = self.mean[...], self.var[...]
            new_mean = (1 - m) * old_mean + m * mean
            new_var = (1 - m) * old_var + m * var * (n / max(n - 1, 1))
            self.mean[...] = jax.lax.stop_gradient(new_mean).astype(old_mean.dtype)
            self.var[...] = jax.lax.stop_gradient(new_var).astype(old_var.dtype)
        channels = (1,) * (x.ndim - 1) + (-1,)  # (C,) -> (1, 1, 1, C), no implicit broadcast
        inv = (jax.lax.rsqrt(var + self.epsilon) * self.scale[...]).reshape(channels)
        # Centre first: x·inv + (bias − mean·inv) would cancel digits when |mean| ≫ std.
        y = (xf - mean.reshape(channels)) * inv + self.bias[...].reshape(channels)
        return y.astype(x.dtype)


def conv(in_planes: int, out_planes: int, kernel: int, stride: int, *, rngs: nnx.Rngs) -> nnx.Conv:
    pad = (kernel - 1) // 2  # torch's padding=k//2, symmetric on both sides
    return nnx.Conv(
        in_planes,
        out_planes,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=False,
        rngs=rngs,
    )


Downsample = nnx.List[nnx.Conv | BatchNorm]  # a 1×1 conv, then a BatchNorm


def downsample(inplanes: int, outplanes: int, stride: int, *, rngs: nnx.Rngs) -> Downsample | None:
    """1×1 conv + BatchNorm on the shortcut, as a list so names read ``downsample.0.kernel``."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nnx.List([conv(inplanes, outplanes, 1, stride, rngs=rngs), BatchNorm(outplanes)])


def shortcut(block: "BasicBlock | Bottleneck", x: jax.Array) -> jax.Array:
    if block.downsample is None:
        return x
    projection, norm = block.downsample
    projected: jax.Array = norm(projection(x))
    return projected


class BasicBlock(nnx.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = conv(inplanes, planes, 3, stride, rngs=rngs)
        self.bn1 = BatchNorm(planes)
        self.conv2 = conv(planes, planes, 3, 1, rngs=rngs)
        self.bn2 = BatchNorm(planes)
        self.downsample = downsample(inplanes, planes, stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nnx.relu(out + shortcut(self, x))


class Bottleneck(nnx.Module):
    """ResNet v1.5: the stride sits on the 3×3 conv, as in torchvision."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, *, rngs: nnx.Rngs) -> None:
        self.conv1 = conv(inplanes, planes, 1, 1, rngs=rngs)
        self.bn1 = BatchNorm(planes)
        self.conv2 = conv(planes, planes, 3, stride, rngs=rngs)
        self.bn2 = BatchNorm(planes)
        self.conv3 = conv(planes, planes * 4, 1, 1, rngs=rngs)
        self.bn3 = BatchNorm(planes * 4)
        self.downsample = downsample(inplanes, planes * 4, stride, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = nnx.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return nnx.relu(out + shortcut(self, x))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nnx.Module):
    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        widths: Sequence[int],
        stem: str,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        block_class = BLOCKS[block]
        self.imagenet_stem = stem == "imagenet"
        if self.imagenet_stem:  # 7×7/2 conv, then a 3×3/2 max pool in __call__: 224 → 56
            self.conv1 = conv(3, widths[0], 7, 2, rngs=rngs)
        else:  # CIFAR: 3×3/1 conv, no pool, so 32×32 inputs keep their resolution
            self.conv1 = conv(3, widths[0], 3, 1, rngs=rngs)
        self.bn1 = BatchNorm(widths[0])
        inplanes = widths[0]
        stages = []
        for index, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if index == 0 else 2
            stage = [block_class(inplanes, planes, stride, rngs=rngs)]
            inplanes = planes * block_class.expansion
            stage += [block_class(inplanes, planes, 1, rngs=rngs) for _ in range(1, blocks)]
            stages.append(nnx.List(stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nnx.Linear(inplanes, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, H, W, 3) -> (B, classes)
        x = nnx.relu(self.bn1(self.conv1(x)))
        if self.imagenet_stem:  # torch's MaxPool2d(3, 2, padding=1): pads with -inf
            # nnx.max_pool is Flax Linen's pooling function, which has no type annotations.
            x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))  # type: ignore[no-untyped-call]
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return self.fc(x.mean(axis=(1, 2)))  # global average pool over H, W


def build(config: Mapping[str, Any]) -> ResNet:
    return ResNet(
        config["block"],
        config["layers"],
        config["widths"],
        config["stem"],
        config["num_classes"],
        rngs=nnx.Rngs(0),
    )


def forward(model: ResNet, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["x"])


def loss_fn(model: ResNet, batch: dict[str, jax.Array]) -> jax.Array:
    logits = forward(model, batch)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))
