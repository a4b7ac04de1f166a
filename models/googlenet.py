"""GoogLeNet (Inception v1; Szegedy et al., 2014), as torchvision lays it out, with optional
auxiliary classifiers.

    layer          output at 224 px   #1x1  #3x3 reduce  #3x3  #5x5 reduce  #5x5  pool proj
    conv1          64 x 112 x 112     conv 7x7, stride 2
    maxpool1       64 x 56 x 56       max-pool 3/2
    conv2          64 x 56 x 56       conv 1x1
    conv3          192 x 56 x 56      conv 3x3
    maxpool2       192 x 28 x 28      max-pool 3/2
    inception3a    256 x 28 x 28        64        96         128       16         32       32
    inception3b    480 x 28 x 28       128       128         192       32         96       64
    maxpool3       480 x 14 x 14      max-pool 3/2
    inception4a    512 x 14 x 14       192        96         208       16         48       64   -> aux1
    inception4b    512 x 14 x 14       160       112         224       24         64       64
    inception4c    512 x 14 x 14       128       128         256       24         64       64
    inception4d    528 x 14 x 14       112       144         288       32         64       64   -> aux2
    inception4e    832 x 14 x 14       256       160         320       32        128      128
    maxpool4       832 x 7 x 7        max-pool 2/2
    inception5a    832 x 7 x 7         256       160         320       32        128      128
    inception5b    1024 x 7 x 7        384       192         384       48        128      128
    global avg-pool (the 1024-d embedding) -> dropout(drop_rate, 0.4 in the paper) -> fc num_classes

Inception block: four branches concatenated on channels:
    1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> "5x5" | max-pool 3/1 -> 1x1 pool proj
Auxiliary classifier (aux1 on inception4a, aux2 on inception4d; training only):
    avg-pool to 4x4 -> conv 1x1, 128 -> flatten 2048 -> fc 1024 -> ReLU -> dropout 0.7 -> fc num_classes

Stems:
    imagenet: as drawn above; the inception blocks see the input divided by 8 (224 -> 28).
    cifar:    conv1 is 3x3 with stride 1 and maxpool1 and maxpool2 are left out, so a 32x32
              input reaches inception3a at 32x32, inception4a at 16x16 (the aux heads'
              input) and inception5a at 8x8, which the global avg-pool reduces to the embedding.
              That costs about 1.45 G multiply-adds per 32 px image, as much as the ImageNet
              stem at 224 px.

Where this follows torchvision's port rather than the paper, so that torchvision's weights load:
every conv is conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, with no local response norm; the
"5x5" branch is a 3x3 conv (torchvision issue #906); maxpool4 is 2/2 rather than 3/2 (the
same 7x7 output). The main dropout, drop_rate, defaults to the paper's 0.4 (torchvision's to 0.2);
dropout changes nothing at eval, so the weights are unaffected. The auxiliary heads keep the
paper's 0.7.

torchvision's `transform_input` is left out: our pipeline normalises the images. Its published
GoogLeNet weights do expect it (its builder turns it on with them): they were ported from the
original network, which takes each channel scaled to [-1, 1], i.e. normalised with mean 0.5
and std 0.5, not with the ImageNet statistics. Those weights also carry auxiliary heads, which
torchvision did not train.

Module names follow torchvision's GoogLeNet (`conv1.conv`, `inception3a.branch1.conv`,
`aux1.fc1`, `fc`, ...) so that its weights load one to one.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from models.classifier import ImageClassifier
from models.layers import ConvNormAct
from models.registry import register_model


# conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, with the part names of torchvision's GoogLeNet.
BasicConv2d = partial(ConvNormAct, norm_layer=partial(nn.BatchNorm2d, eps=0.001),
                      layer_names=("conv", "bn", "relu"))


class Inception(nn.Module):
    """An Inception block: the four branches of the module docstring, concatenated on channels."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3_reduce: int, ch3x3: int, ch5x5_reduce: int, ch5x5: int,
                 pool_proj: int):
        super().__init__()
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3_reduce, kernel_size=1),
            BasicConv2d(ch3x3_reduce, ch3x3, kernel_size=3),
        )
        # 3x3 where the paper has 5x5: the shape torchvision's published weights have.
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5_reduce, kernel_size=1),
            BasicConv2d(ch5x5_reduce, ch5x5, kernel_size=3),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """An auxiliary classifier: avg-pool 4x4 -> conv 1x1, 128 -> fc 1024 -> ReLU -> dropout 0.7 -> fc."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        # Adaptive, so that the head also fits the cifar stem's 16x16 maps; at 224 px (14x14) it
        # pools like the paper's 5x5/3 average pool.
        self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.avgpool(x)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


def _skip_absent_aux_heads(module: GoogLeNet, state_dict: dict[str, torch.Tensor], prefix: str,
                           *hook_args: object) -> None:
    """Load-state-dict pre-hook of a GoogLeNet built without auxiliary heads: drop the aux tensors
    a checkpoint may carry (torchvision's, its published weights included, always do), since the
    heads only matter in training. load_state_dict hands hooks its own copy of the dict."""
    for key in [key for key in state_dict if key.startswith((prefix + "aux1.", prefix + "aux2."))]:
        del state_dict[key]


class GoogLeNet(ImageClassifier):
    """GoogLeNet; see the module docstring for the layers, the stems and the auxiliary heads.

    With `aux_logits`, forward in training mode returns `(logits, [aux1_logits, aux2_logits])`;
    otherwise, and always in eval mode, just the logits (the auxiliary heads are not run).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.4, stem: str = "imagenet",
                 aux_logits: bool = False):
        super().__init__()
        if stem == "imagenet":
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=7, stride=2)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        elif stem == "cifar":
            self.conv1 = BasicConv2d(in_chans, 64, kernel_size=3)
            self.maxpool1 = nn.Identity()
            self.maxpool2 = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3)

        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)

        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)

        self.aux_logits = aux_logits
        if aux_logits:
            self.aux1 = InceptionAux(self.inception4a.out_channels, num_classes)
            self.aux2 = InceptionAux(self.inception4d.out_channels, num_classes)
        else:
            self.register_load_state_dict_pre_hook(_skip_absent_aux_heads)

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.inception5b.out_channels
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                # torchvision's call: its bounds are absolute (+-2, i.e. 200 std), so this is in
                # effect normal(0, 0.01). Biases keep PyTorch's default, as in torchvision.
                nn.init.trunc_normal_(module.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def _forward_trunk(self, x: torch.Tensor, run_aux: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The pooled embedding and, when `run_aux`, the two auxiliary heads' logits."""
        aux_outputs = []
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if run_aux:
            aux_outputs.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if run_aux:
            aux_outputs.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        return torch.flatten(self.avgpool(x), 1), aux_outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled 1024-d embedding (the auxiliary heads are not run)."""
        return self._forward_trunk(x, run_aux=False)[0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))

    def forward(self, x: torch.Tensor, return_features: bool = False, detach_head: bool = False):
        """The logits, or (logits, [aux_logits, ...]) in training with `aux_logits`; with
        `return_features`, (embedding, that) as ImageClassifier.forward."""
        run_aux = self.aux_logits and self.training
        features, aux_outputs = self._forward_trunk(x, run_aux)
        logits = self.forward_head(features.detach() if detach_head else features)
        outputs = (logits, aux_outputs) if run_aux else logits
        return (features, outputs) if return_features else outputs


@register_model
def googlenet(num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.4, stem: str = "imagenet",
              aux_logits: bool = False) -> GoogLeNet:
    """GoogLeNet (Inception v1), with the two auxiliary classifiers when `aux_logits`."""
    return GoogLeNet(num_classes, in_chans, drop_rate, stem, aux_logits)
