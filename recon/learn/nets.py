"""Building blocks of :class:`facecast.recon.learn.regressor.Regressor` (written here: torchvision is not a dependency).

``CropEncoder``: MobileNetV2-style CNN, ``(B, 3, S, S)`` -> ``(B, F)``.
``LandmarkEncoder``: MLP on flattened landmarks, ``(B, 2N)`` -> ``(B, F)``.

GroupNorm instead of BatchNorm: training and inference behave the same (no running
statistics), small or single-identity batches are fine, and a resumed run is
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from torch import nn


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``groups`` that divides ``channels``."""
    g = max(k for k in range(1, groups + 1) if channels % k == 0)
    return nn.GroupNorm(g, channels)


def conv_norm_act(cin: int, cout: int, kernel: int, stride: int, groups: int, norm_groups: int,
                  act: bool = True) -> nn.Sequential:
    """Conv (no bias) -> GroupNorm -> ReLU6 (optional)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               _norm(cout, norm_groups)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection (+ skip)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, norm_groups: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.skip = stride == 1 and cin == cout
        self.body = nn.Sequential(
            conv_norm_act(cin, hidden, 1, 1, 1, norm_groups),
            conv_norm_act(hidden, hidden, 3, stride, hidden, norm_groups),
            conv_norm_act(hidden, cout, 1, 1, 1, norm_groups, act=False),
        )

    def forward(self, x):
        """``(B, cin, H, W)`` -> ``(B, cout, H / stride, W / stride)``."""
        y = self.body(x)
        return x + y if self.skip else y


class CropEncoder(nn.Module):
    """Stride-2 stem, then per stage one stride-2 block and ``blocks - 1`` stride-1 blocks,
    a 1x1 conv to ``features`` channels and global average pooling: ``(B, 3, S, S)`` -> ``(B, F)``."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...], expand: int, features: int,
                 norm_groups: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_norm_act(3, widths[0], 3, 2, 1, norm_groups)]
        for cin, cout, count in zip(widths[:-1], widths[1:], blocks):
            layers.append(InvertedResidual(cin, cout, 2, expand, norm_groups))
            layers.extend(InvertedResidual(cout, cout, 1, expand, norm_groups) for _ in range(count - 1))
        layers.append(conv_norm_act(widths[-1], features, 1, 1, 1, norm_groups))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).mean(dim=(2, 3))


class LandmarkEncoder(nn.Module):
    """Two hidden SiLU layers: ``(B, inputs)`` -> ``(B, features)``."""

    def __init__(self, inputs: int, hidden: int, features: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                  nn.Linear(hidden, features), nn.SiLU())

    def forward(self, x):
        return self.body(x)
