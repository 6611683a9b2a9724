"""``--space blocks``: TinyNAS-style backbones under a YOLOv8 neck and head, grown from ``--init``
(default a YOLOv8n-sized structure) and scored from their structure where possible."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from search.space_recipes._base import SearchParts, SpaceRecipe
from spaces.errors import ArchpruneError

if TYPE_CHECKING:
    from search.runs import RunHandle
    from search.settings import RunSettings
    from search.store import TrialRecord
    from spaces._base import SearchSpace

#: --space blocks without budgets: the default structure's costs at the run's image size (a YOLOv8n-sized
#: backbone, FLOPs and params, in a YOLOv8n-sized detector) and YOLOv8n's 29 backbone convs. The backbone
#: budget keeps a search from buying backbone FLOPs with a narrower neck.
BLOCK_BUDGETS = ("backbone_flops_g", "flops_g", "params_m")
BLOCK_LAYERS_BUDGET = 29


class BlocksRecipe(SpaceRecipe):
    summary = "TinyNAS-style backbones"
    own_settings = ("init", "neck", "channel_ranges", "kernels")
    example = {"imgsz": 64, "objectives": "entropy:max", "driver": "zeroshot", "population": 8, "offspring": 4}

    def check(self, settings: RunSettings) -> None:
        from spaces.blocks.skeleton import NECKS

        if settings.neck is not None and settings.neck not in NECKS:
            raise ArchpruneError(f"unknown --neck {settings.neck!r}: use c2f (YOLOv8's) or rep (RepConv blocks, "
                                 "RepGFPN-style)")
        if settings.model:
            raise ArchpruneError("--space blocks designs its own backbones: drop --model (use --init STRUCTURE)")
        parse_channel_ranges(settings.channel_ranges)
        parse_kernels(settings.kernels)

    def run_source(self, settings: RunSettings) -> str:
        return settings.init or "default"

    def build(self, settings: RunSettings) -> SearchParts:
        from evaluators.block_analytic import BlockAnalyticEvaluator
        from evaluators.image_size import DEFAULT_IMGSZ, check_imgsz
        from evaluators.registry import evaluators_for, needs_data
        from search.objectives import Constraint
        from spaces.blocks import DEFAULT_STRUCTURE, BlockSpace, parse_structure

        needed = settings.metric_names()
        if needs_data(needed):
            raise ArchpruneError("block-space candidates are untrained, so mAP means nothing for them: search on "
                                 "training-free scores (entropy, zen, ...), then train the exported structure")
        nc, names = 80, None
        if settings.data:
            from evaluators.data import load_data_config

            data = load_data_config(settings.data)
            nc, names = data.nc, data.names
        structure = parse_structure(settings.init) if settings.init else DEFAULT_STRUCTURE
        try:
            space = BlockSpace(structure, nc=nc, names=names, neck=settings.neck or "c2f",
                               channel_ranges=parse_channel_ranges(settings.channel_ranges),
                               kernels=parse_kernels(settings.kernels) or (3, 5))
        except ArchpruneError as err:
            if not settings.channel_ranges or not str(err).startswith("channel ranges: "):
                raise
            raise ArchpruneError(f"--channel-ranges {settings.channel_ranges}: {str(err)[len('channel ranges: '):]} "
                                 "(lo:hi or * each)") from None
        imgsz = check_imgsz(settings.imgsz or DEFAULT_IMGSZ)  # a fresh block detector has no training size
        analytic = BlockAnalyticEvaluator(space, settings.entropy_weights)  # no network built for these
        evaluators = [analytic, *evaluators_for(set(needed) - set(analytic.metric_names), settings, None, imgsz,
                                                   space)]
        constraints = list(settings.constraint_list)
        if not constraints:  # the budgets of the default: a YOLOv8n-sized backbone in a YOLOv8n-sized detector
            start = space.analytic_metrics(space.baselines()[0][1], imgsz)
            defaults = space.analytic_metrics(space.genome_of(DEFAULT_STRUCTURE), imgsz) if not settings.init else start
            # exact bounds, not rounded strings: rounding down once made the initial structure itself infeasible
            constraints = [Constraint(name, "<=", defaults[name]) for name in BLOCK_BUDGETS]
            constraints.append(Constraint("layers", "<=", max(BLOCK_LAYERS_BUDGET, start["layers"])))
        grown = "the default YOLOv8n-sized structure" if not settings.init else settings.init
        widths = ", ".join(f"{lo}-{hi}" for lo, hi in space.limits.ranges[1:])
        what = (f"TinyNAS-style backbones grown from {grown} ({len(space.genes)} genes: widths {widths}, kernels "
                f"{','.join(map(str, space.limits.kernels))}) under a YOLOv8 neck and head at {imgsz}px; budgets "
                + ", ".join(str(c) for c in constraints))
        return SearchParts(space, evaluators, imgsz, constraints, what)

    def export(self, handle: RunHandle, record: TrialRecord, out: Path, say: Callable[[str], None],
               recalibrate_bn: bool = False) -> dict[str, Any]:
        from search.export_blocks import export_block_trial

        return export_block_trial(handle, record, out, say)

    def calibration_space(self, source: str, nc: int) -> SearchSpace:
        """``blocks`` (the default structure) or ``blocks:STRUCTURE``."""
        from spaces.blocks import DEFAULT_STRUCTURE, BlockSpace

        return BlockSpace(source or DEFAULT_STRUCTURE, nc=nc)

    def calibration_description(self, source: str) -> str:
        return "the initial structure and random block-space detectors"


def parse_channel_ranges(text: str | None) -> list[tuple[int, int] | None] | None:
    """``--channel-ranges "*,*,64:128,128:256,256:512"``: a (lo, hi) or None (the default) per stage,
    stem first; ``SpaceLimits.around`` checks them against the initial structure."""
    if not text:
        return None
    out: list[tuple[int, int] | None] = []
    for item in str(text).split(","):
        item = item.strip()
        if item in ("*", ""):
            out.append(None)
            continue
        lo, sep, hi = item.partition(":")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise ArchpruneError(f"--channel-ranges {text!r}: {item!r} is not lo:hi; give one lo:hi (multiples of 8) "
                                 "or * per stage, stem first, e.g. *,*,64:128,128:256,256:512")
        out.append((int(lo), int(hi)))
    return out


def parse_kernels(text: str | None) -> tuple[int, ...] | None:
    """``--kernels 3`` or ``3,5``: odd kernel sizes (None: the space's default)."""
    if not text:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not all(p.isdigit() and int(p) % 2 == 1 for p in parts):
        raise ArchpruneError(f"--kernels {text!r}: give odd kernel sizes, comma-separated, e.g. 3 or 3,5")
    return tuple(int(p) for p in parts)
