"""Backbones that expose their hidden layers as taps, registered by name.

Each architecture exists once; `SharingEnsemble` decides which taps get heads,
so a baseline and its SE variant are built from the same backbone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sharens.model.ensemble import DEFAULT_INIT, TappedBackbone


def pyramid_widths(first: int, depth: int, shrink: float = math.sqrt(2)) -> list[int]:
    """Layer widths shrinking by `shrink` per layer (the paper's ~1/sqrt(2) pyramid)."""
    return [max(1, round(first / shrink**i)) for i in range(depth)]


def _flat(input_shape: Sequence[int]) -> int:
    return math.prod(input_shape)


class _LayerStack(TappedBackbone):
    """Layers applied in turn to the input (flattened, unless `_inputs` says otherwise); the output of layer i is
    tap `L<i>` if `tap_features` names it."""

    layers: nn.ModuleList

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = {}
        x = self._inputs(x)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if f"L{i}" in self.tap_features:
                taps[f"L{i}"] = x
        return taps


class PyramidDNN(_LayerStack):
    """Fully connected layers, each FC -> batch norm -> leaky ReLU (paper section 1).

    The input is flattened. Taps after every `tap_every`-th layer, and always after the last one.
    """

    def __init__(self, input_shape: Sequence[int], widths: Sequence[int], tap_every: int = 2):
        super().__init__()
        in_features = _flat(input_shape)
        self.layers = nn.ModuleList()
        self.tap_features = {}
        for i, width in enumerate(widths, start=1):
            self.layers.append(
                nn.Sequential(nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.LeakyReLU())
            )
            if i % tap_every == 0 or i == len(widths):
                self.tap_features[f"L{i}"] = width
            in_features = width


class MLP(_LayerStack):
    """The gcForest paper's MLP baselines: FC -> ReLU layers (e.g. 70-50), a tap after each."""

    def __init__(self, input_shape: Sequence[int], widths: Sequence[int]):
        super().__init__()
        in_features = _flat(input_shape)
        self.layers = nn.ModuleList()
        self.tap_features = {}
        for i, width in enumerate(widths, start=1):
            self.layers.append(nn.Sequential(nn.Linear(in_features, width), nn.ReLU()))
            self.tap_features[f"L{i}"] = width
            in_features = width


class DeepLSTM(TappedBackbone):
    """Stacked LSTM layers; a tap after each layer.

    Numeric rows are reshaped to (steps, features) (the sEMG protocol: 3,000
    samples as 6 steps x 500); token rows (`vocab_size` given) go through a
    learned `embed_dim` embedding, one step per token. `readout` says what a tap
    is: the layer's whole output sequence, flattened ("sequence"), or its state
    after the last step ("last", the usual reading of a text LSTM).
    """

    batchable = False  # nn.LSTM has no vmap batching rule

    def __init__(self, input_shape: Sequence[int], hidden: int, layers: int, steps: int | None = None,
                 vocab_size: int | None = None, embed_dim: int = 100, readout: str = "sequence"):
        super().__init__()
        if readout not in ("sequence", "last"):
            raise ValueError(f"readout must be 'sequence' or 'last', got {readout!r}")
        length = _flat(input_shape)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if vocab_size else None
        if self.embedding is not None:
            self.steps, self.step_features = length, embed_dim
        elif not steps or length % steps:
            raise ValueError(f"{length} inputs do not split into {steps} equal steps")
        else:
            self.steps, self.step_features = steps, length // steps
        self.readout = readout
        sizes = [self.step_features] + [hidden] * layers
        self.layers = nn.ModuleList(
            nn.LSTM(sizes[i], hidden, batch_first=True) for i in range(layers)
        )
        tap_width = hidden * (self.steps if readout == "sequence" else 1)
        self.tap_features = {f"lstm{i}": tap_width for i in range(1, layers + 1)}
        # torch's flop counter does not see inside nn.LSTM: count each layer's 4 gate matmuls ourselves.
        self.uncounted_tap_flops = {f"lstm{i}": 2 * self.steps * 4 * hidden * (sizes[i - 1] + hidden)
                                    for i in range(1, layers + 1)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.embedding is not None:
            x = self.embedding(x)
        else:
            x = x.view(-1, self.steps, self.step_features)
        taps = {}
        for i, layer in enumerate(self.layers, start=1):
            x, _ = layer(x)
            taps[f"lstm{i}"] = x if self.readout == "sequence" else x[:, -1]
        return taps


def _default_init(layers: nn.Module, activation: str) -> str:
    return DEFAULT_INIT


def _xavier_tanh(layers: nn.Module, activation: str) -> str:
    gain = nn.init.calculate_gain(activation if activation in ("tanh", "relu") else "leaky_relu")
    for module in layers.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d):
            nn.init.xavier_uniform_(module.weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return f"Xavier-uniform with gain {gain:.3f} ({activation}), zero bias"


INITS = {"default": _default_init, "xavier_tanh": _xavier_tanh}


class ConvNet(_LayerStack):
    """Convolutions (kernel 3, "same" padding) -> batch norm -> leaky ReLU; stride 2 instead of pooling.

    `layers` is a list of (channels, stride), one per layer; taps after every
    `tap_every`-th layer and the last. `dims` = 1 convolves along a sequence,
    2 over an image. Inputs: token ids when `vocab_size` is given (embedded,
    then 1-D over tokens, embedding dims as channels); else an image
    (channels, H, W), or a matrix (H, W) that is read as one channel (MFCCs).
    `activation` = "tanh" is the Figure 2 variant; `batch_norm` = False drops BN.
    `init` = "xavier_tanh" draws every convolution's weight Glorot-uniform with
    the tanh gain (5/3) and zero bias, the classic cure for vanishing signals
    in deep tanh nets; "default" keeps PyTorch's (`ensemble.DEFAULT_INIT_MEANING`).
    """

    def __init__(self, input_shape: Sequence[int], layers: Sequence[Sequence[int]], dims: int = 2,
                 tap_every: int = 2, vocab_size: int | None = None, embed_dim: int = 100,
                 activation: str = "leaky_relu", batch_norm: bool = True, init: str = "default"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; known: {sorted(INITS)}")
        input_shape = tuple(input_shape)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if vocab_size else None
        if self.embedding is not None:
            shape = (embed_dim, *input_shape)
        else:
            shape = input_shape if len(input_shape) == dims + 1 else (1, *input_shape)
        if len(shape) != dims + 1:
            raise ValueError(f"input of shape {input_shape} does not fit a {dims}-D convolution")
        conv, norm = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
        act = {"leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        self.in_shape = shape
        self.layers = nn.ModuleList()
        self.tap_features = {}
        channels, size = shape[0], list(shape[1:])
        for i, (width, stride) in enumerate(layers, start=1):
            block = [conv(channels, width, 3, stride=stride, padding=1, bias=not batch_norm)]
            block += [norm(width)] if batch_norm else []
            self.layers.append(nn.Sequential(*block, act()))
            channels, size = width, [(s - 1) // stride + 1 for s in size]
            if i % tap_every == 0 or i == len(layers):
                self.tap_features[f"L{i}"] = width * math.prod(size)
        self.init = INITS[init](self.layers, activation)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            return self.embedding(x).transpose(1, 2)  # (batch, embed, tokens)
        return x.reshape(-1, *self.in_shape)


class _ResidualPair(nn.Module):
    """Two 3x3 conv-BN layers (He et al. 2016, CIFAR); `residual` adds the option-A shortcut."""

    def __init__(self, channels_in: int, channels: int, stride: int, residual: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.residual, self.stride, self.extra_channels = residual, stride, channels - channels_in

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: identity, subsampled and zero-padded in channels when the shape changes (no parameters)."""
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = nn.functional.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x) if self.residual else out)


class CifarResNet(TappedBackbone):
    """He et al.'s CIFAR-10 nets of depth 6n+2: ResNet (`residual`) or the same "plain" net without shortcuts.

    3x3 conv (16) -> 3 stages of n pairs of 3x3 convs on 32, 16, 8 pixel maps with 16, 32,
    64 filters (stride 2 opens stages 2 and 3) -> global average pool -> the head. Taps
    after the middle pair and the last pair of every stage; the last tap is the pooled
    64-d feature, so the baseline (one head there) is exactly the paper's network.
    `readout` = "pool" lets the other taps' heads read pooled channels (16, 32 or 64
    numbers), "flatten" the whole map. He (fan-out) initialization.
    """

    init = "He: Kaiming-normal (fan-out, ReLU) on every convolution"

    def __init__(self, input_shape: Sequence[int], n: int, residual: bool = True, readout: str = "pool"):
        super().__init__()
        if n < 1 or readout not in ("pool", "flatten"):
            raise ValueError(f"need n >= 1 and readout 'pool' or 'flatten', got n={n}, readout={readout!r}")
        channels, size = input_shape[0], input_shape[-1]
        self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.ModuleList()
        self.readout, self.tap_features, self._tap_after = readout, {}, {}
        channels_in = 16
        for stage, channels in enumerate((16, 32, 64), start=1):
            if stage > 1:
                size //= 2
            for i in range(1, n + 1):
                stride = 2 if stage > 1 and i == 1 else 1
                self.blocks.append(_ResidualPair(channels_in, channels, stride, residual))
                channels_in = channels
                if i in (max(1, n // 2), n) and not (stage == 3 and i == n):
                    name = f"s{stage}b{i}"
                    self._tap_after[len(self.blocks)] = name
                    self.tap_features[name] = channels if readout == "pool" else channels * size * size
        self.tap_features["pool"] = 64
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        taps = {}
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in self._tap_after:
                taps[self._tap_after[i]] = x.mean((2, 3)) if self.readout == "pool" else x
        taps["pool"] = x.mean((2, 3))
        return taps


class CenteredImages(TappedBackbone):
    """uint8 pixels in, the wrapped backbone's taps out: scaled to [0, 1] and centred on the per-pixel mean.

    Images stay uint8 on the device (4x less memory and copying than float32)
    and become floats one mini-batch at a time, inside the model. The mean is
    the training set's, per pixel and channel (He et al.'s per-pixel mean
    subtraction); it is a buffer, not a parameter, so parameter counts are the
    backbone's own.
    """

    def __init__(self, backbone: TappedBackbone, pixel_mean: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        self.tap_features, self.init = backbone.tap_features, backbone.init
        self.register_buffer("pixel_mean", pixel_mean.float())

    @classmethod
    def around(cls, backbone: TappedBackbone, x_train: torch.Tensor, chunk: int = 8192) -> CenteredImages:
        """Wrap `backbone` with the per-pixel mean of the uint8 training images `x_train` (summed in chunks)."""
        total = sum(x_train[i : i + chunk].sum(0, dtype=torch.float64) for i in range(0, len(x_train), chunk))
        return cls(backbone, total / (255.0 * len(x_train)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone(x.float().div_(255.0).sub_(self.pixel_mean))


BACKBONES = {"pyramid_dnn": PyramidDNN, "mlp": MLP, "deep_lstm": DeepLSTM, "convnet": ConvNet,
             "cifar_resnet": CifarResNet}


def build_backbone(name: str, input_shape: int | Sequence[int], **options) -> TappedBackbone:
    """Build a registered backbone by name (timm-style factory) for inputs of `input_shape` (one row)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    if "first_width" in options:  # pyramid given by its first width and depth
        options["widths"] = pyramid_widths(options.pop("first_width"), options.pop("depth"))
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    return BACKBONES[name](shape, **options)
