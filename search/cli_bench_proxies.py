"""``archprune bench proxies``: the parser, kept apart from ``search.proxy_benchmark`` (which imports
torch and every score) so that building the command line stays torch-free; the scores are named and
checked when the command runs."""
from __future__ import annotations

import argparse
import json
import sys


def add_proxies_parser(which: argparse._SubParsersAction) -> None:
    """Registered under the ``bench`` subcommands."""
    p = which.add_parser("proxies", help="rank correlation of each zero-shot score with a table's accuracy "
                                         "(NAS-Bench-201)")
    p.add_argument("--table", required=True,
                   help="CSV with an arch_str column (e.g. ../shared/data/nb201/nb201_cifar10.csv)")
    p.add_argument("--accuracy", required=True, help="the table's accuracy column (e.g. test_acc_cifar10)")
    p.add_argument("--samples", type=int, default=1000, help="distinct cells to score (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="picks the cells, the minibatch and the weights (default 0)")
    p.add_argument("--scores", default=None, help="comma-separated (default every zero-shot score of "
                                                  "`archprune search --help`, then params_m and flops_g)")
    p.add_argument("--batch", type=int, default=None,
                   help="minibatch size for every score that takes one (default as published: naswot 128, "
                        "synflow 1, the others 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by score")
    p.set_defaults(func=_cmd_bench_proxies)


def _cmd_bench_proxies(args: argparse.Namespace) -> int:
    from search.proxy_benchmark import benchmark_proxies, format_proxy_report

    say = (lambda line: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    report = benchmark_proxies(args.table, args.accuracy, args.samples, args.seed, args.scores, args.batch, say)
    print(json.dumps(report) if args.json else format_proxy_report(report))
    return 0
