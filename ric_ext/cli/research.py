"""`train` and `evaluate`: the paper's networks, and the quality and security evaluations."""

from __future__ import annotations

import argparse

from .common import add_cipher_args, bank_of, carried_name, classifier_of, load_model, nae_of, scheme_of


def _cmd_train(args: argparse.Namespace) -> int:
    from ..options import from_options
    from ..training import TrainConfig, Trainer

    cfg = from_options(TrainConfig, args)
    trainer = Trainer(cfg, progress=not args.no_progress)
    hist = trainer.train()
    if hist and trainer.rank == 0:
        last = hist[-1]
        print(
            f"step {last['step']}: loss {last['loss']:.4f} psnr(train batch) {last['psnr_train']:.2f} dB "
            f"agreement {last['agree_train']:.3f}; checkpoint {cfg.out}/checkpoint.pt"
        )
        if trainer.best > float("-inf"):
            print(f"best validation PSNR {trainer.best:.2f} dB: {cfg.out}/best.pt")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    scheme = {"scheme": scheme_of(args), "pad_a": args.pad_a, "base": args.base, "bank": bank_of(args)}
    model = None if scheme["scheme"] != "paper" else load_model(args.model, args.device)
    clf = classifier_of(args, model)
    nae = nae_of(args, model, clf, scheme["scheme"])
    if args.attacks:
        from ..options import from_options
        from ..security.protocol import ProtocolSettings, parse_sections, run_protocol

        run_protocol(
            model,
            clf,
            nae,
            args.dataset,
            args.split,
            data=args.data,
            size=args.size,
            attacks=parse_sections(args.attacks),
            settings=from_options(ProtocolSettings, args),
            out=args.out,
            batch_size=args.batch_size,
            micro_batch=args.micro_batch or None,
            names={
                "model": args.model or f"none ({scheme['scheme']} scheme)",
                "classifier": args.classifier or carried_name(model),
            },
            log=lambda m: print(m, flush=True),
            **scheme,
        )
        with open(f"{args.out}/report.md") as f:
            print(f.read())
        print(f"report: {args.out}/report.md")
        return 0
    from .. import data as data_mod
    from ..evaluate import evaluate, format_table, write_report

    ds = data_mod.dataset(args.dataset, args.split, args.data, args.size)
    if not 0 <= args.start < len(ds):
        raise ValueError(f"--start {args.start} is outside the split's {len(ds)} images")
    x, y = data_mod.stack(ds, list(range(args.start, min(args.start + args.n, len(ds)))))
    res = evaluate(
        model,
        clf,
        x,
        y,
        nae=nae,
        batch_size=args.batch_size,
        micro_batch=args.micro_batch or None,
        metric_mode=args.metric_mode,
        **scheme,
    )
    print(format_table(res))
    write_report(res, args.out)
    print(f"report: {args.out}/report.md")
    return 0


def add_train(sub) -> None:
    from ..options import add_options
    from ..training import TrainConfig

    p = sub.add_parser("train", help="train the RIC networks (docs/scheme.md#training); resumes from OUT/checkpoint.pt")
    add_options(p, TrainConfig)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def add_evaluate(sub) -> None:
    from ..options import add_options
    from ..security.protocol import ProtocolSettings

    ev = sub.add_parser(
        "evaluate",
        help="the evaluation of docs/scheme.md: accuracy, PSNR/SSIM/MAE, dissimilarity, "
        "wrong key; --attacks runs the security evaluation instead",
    )
    ev.add_argument("--dataset", default="svhn", help="svhn | cifar10 | lfw | an image folder (default: %(default)s)")
    ev.add_argument(
        "--split",
        default="paper",
        help="svhn: train | test | paper (test indices 1000-1499); lfw: train | test (default: %(default)s)",
    )
    ev.add_argument("--data", default=None, help="data folder (default: RIC_DATA)")
    ev.add_argument("--size", type=int, default=None, help="image size for LFW / image folders")
    ev.add_argument("--n", type=int, default=500, help="number of images (default: %(default)s)")
    ev.add_argument("--start", type=int, default=0, help="index of the first image in the split (default: %(default)s)")
    ev.add_argument("--out", default="runs/eval", help="report folder (default: %(default)s)")
    ev.add_argument(
        "--metric-mode",
        choices=("ours", "paper"),
        default="ours",
        help="paper: also the authors' metrics (PSNR of the unrounded reconstruction; SSIM with "
        "their uniform 11x11 window and scikit-image's default 7x7) (default: %(default)s)",
    )
    from ..security.attack_config import SECTIONS

    ev.add_argument(
        "--attacks",
        default=None,
        help=f"run the security evaluation instead: 'all' or a comma list of {','.join(SECTIONS)} "
        "(docs/security.md). The public-model attacker keeps its work in OUT/.ric_attack_checkpoint: "
        "rerun an interrupted command to resume it",
    )
    add_options(ev, ProtocolSettings)
    add_cipher_args(ev, needs_key=False)
    ev.set_defaults(func=_cmd_evaluate)
