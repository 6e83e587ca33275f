"""The 2015 paper's CIFAR ResNets (option A shortcuts) in PyTorch, for the benchmark.

Layer for layer the gluonres ``resnet{6n+2}_cifar`` network: 3x3 stem conv-BN-ReLU,
three stages of ``n`` basic units at 16/32/64 filters, option-A shortcuts (stride-2
subsampling, zero channels split before and after the identity), global average
pooling, a 10-way linear layer. ``benchmarks/peers.py`` checks the parameter count
against gluonres before timing.
"""
import torch
from torch import nn
from torch.nn import functional as F


class Unit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.before = (cout - cin) // 2
        self.after = cout - cin - self.before

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride > 1:
            short = short[:, :, ::self.stride, ::self.stride]
        if self.before or self.after:
            short = F.pad(short, (0, 0, 0, 0, self.before, self.after))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes=10):
        super().__init__()
        n, rest = divmod(depth - 2, 6)
        if rest or n < 1:
            raise ValueError(f"depth must be 6n+2, got {depth}")
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        units, cin = [], 16
        for s, width in enumerate((16, 32, 64)):
            for u in range(n):
                units.append(Unit(cin, width, 2 if (u == 0 and s > 0) else 1))
                cin = width
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        x = self.units(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
