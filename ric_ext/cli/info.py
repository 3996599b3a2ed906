"""`info` (what was compiled) and `demo` (the bundled end-to-end run)."""

from __future__ import annotations

import argparse
import json


def _cmd_info(args: argparse.Namespace) -> int:
    from .. import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from ..demo import run_demo

    t = time.perf_counter()
    res = run_demo(device=args.device, out=args.out, scheme=args.scheme, dataset=args.dataset)
    print(res["table"])
    print(f"(demo took {time.perf_counter() - t:.1f} s; {res['note']})")
    return 0


def add_info(sub) -> None:
    info = sub.add_parser("info", help="print what the native kernels were built with")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)


def add_demo(sub) -> None:
    de = sub.add_parser("demo", help="encrypt -> classify -> decrypt bundled sample images with bundled weights")
    de.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    de.add_argument("--out", default=None, help="also write the report (grid, JSON) to this folder")
    de.add_argument(
        "--scheme",
        default="digits",
        choices=("digits", "pad", "paper"),
        help="digits (exact, no networks), pad (format 3) or paper (the bundled SVHN networks) (default: %(default)s)",
    )
    de.add_argument(
        "--dataset",
        default="svhn",
        choices=("svhn", "faces"),
        help="svhn: 16 SVHN digits at 32x32; faces: 4 LFW faces at the paper's 160x160 with the lfw160 classifier "
        "(digits or pad scheme) (default: %(default)s)",
    )
    de.set_defaults(func=_cmd_demo)
