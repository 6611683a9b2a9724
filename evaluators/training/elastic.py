"""Elastic-width training over a base's own channel space (US-Nets / AutoSlim / Once-for-All).

Every step trains, on the same batch, the largest network (the detection loss), the smallest
(every group at its fewest channels) and ``samples`` random genomes of the space (the sandwich
rule), each sub-network with the detection loss plus in-place distillation towards the largest
network's outputs of that step; the sub-networks' mean loss is weighted by ``weight`` against
the largest network's. Channels are ordered once, before training, by the space's
importance criterion (as OFA re-sorts them), and a genome keeps a prefix of each group's order,
so every sub-network is nested in the larger ones. The order is recorded in the checkpoint: a
ChannelSpace built on the result keeps exactly the prefixes it was trained on.

With ``depth`` the space also has depth genes (``--depth`` of a search): sub-networks then drop
trailing blocks of the C2f / C3k2 / C3k chains too, as OFA trains elastic depth (keep the first k),
and the smallest network keeps the fewest blocks of every chain.

Sub-networks run on the full model through channel masks (spaces.channel_masks), never a rebuild.
BatchNorm running statistics are updated by the largest network only (US-Nets keeps one shared
BN and recalibrates per width afterwards, which is what the adaptive-BN proxy does per candidate).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from evaluators.bn_recalibration import bn_momentum
from spaces._base import Genome
from spaces.channel_masks import ChannelMasks
from spaces.channel_space import ChannelSpace
from spaces.errors import ArchpruneError

from .distill import head_kd_loss
from .extension import StepLoss, TrainingExtension
from .loss import DetectionLoss


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm (batch statistics) that leaves its running statistics untouched."""
    with bn_momentum(model, 0.0):  # running = (1 - 0) * running + 0 * batch
        yield


class ElasticTrainer(TrainingExtension):
    name = "elastic"

    def __init__(self, model: nn.Module, samples: int = 2, seed: int = 0, importance: str = "l1",
                 weight: float = 1.0, example: torch.Tensor | None = None, depth: bool = False) -> None:
        if samples < 0:
            raise ArchpruneError(f"--elastic-samples must be 0 or more, got {samples}")
        if not weight > 0:
            raise ArchpruneError(f"--elastic-weight must be positive, got {weight}")
        self.samples, self.seed, self.weight = samples, seed, weight
        was_training = model.training
        model.eval()  # tracing must not touch the BatchNorm statistics
        # On a resumed run (or an elastic base trained further) the model already records its
        # order and the space keeps it; otherwise the importance criterion orders the channels now.
        self.space = ChannelSpace(model, example_inputs=example, importance=importance, depth=depth)
        model.train(was_training)
        self.order = self.space.channel_order()
        model.channel_order = self.order
        self.masks = ChannelMasks(model, self.space)
        self.loss_fn = DetectionLoss(model.head)
        self.last_step: list[Genome | None] = []  # what the latest step trained (None: the largest)

    def smallest(self) -> Genome:
        return self.space.canonical(tuple(0 for _ in self.space.genes))

    def subnets(self, epoch: int, index: int) -> list[Genome]:
        """The smallest genome and ``samples`` random ones, drawn from (seed, epoch, step) so a
        resumed run draws the same."""
        rng = np.random.default_rng([self.seed, epoch, index])
        return [self.smallest()] + [self.space.sample(rng) for _ in range(self.samples)]

    def forward_backward(self, model: nn.Module, batch: dict[str, Any], step_loss: StepLoss,
                         epoch: int, index: int) -> Tensor:
        images = batch["img"]
        self.masks.set(None)
        feats = model(images)
        total, parts = step_loss(batch, feats)
        total.backward()
        teacher = [f.detach() for f in feats]
        self.last_step = [None]
        kd_sum = torch.zeros(())
        head = model.head
        subnets = self.subnets(epoch, index)
        # The sub-networks' mean loss, times the weight: at 1 they pull on the shared weights about as
        # hard as the largest network does (summed, three of them cost the full model 0.02 mAP50-95).
        scale = self.weight / len(subnets)
        with frozen_bn_statistics(model):
            for genome in subnets:
                self.masks.set(genome)
                sub_feats = model(images)
                det, _ = self.loss_fn(sub_feats, batch["batch_idx"], batch["cls"], batch["boxes"])
                kd = head_kd_loss(sub_feats, teacher, head.nc, head.reg_max)
                ((det + kd * images.shape[0]) * scale).backward()  # kd is per image; the detection loss is summed
                kd_sum += kd.detach()
                self.last_step.append(genome)
        self.masks.set(None)
        parts = parts.clone()
        parts[3] = kd_sum / len(subnets)  # the log's kd column: in-place distillation
        return parts

    def prepare_checkpoint(self, model: nn.Module) -> None:
        model.channel_order = self.order
