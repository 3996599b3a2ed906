"""Command line: ``python -m ric_ext <command>`` (also installed as ``ric-ext``).

Commands: info, keygen, encrypt, decrypt, classify, train, evaluate, import-authors, demo.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Optional, Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from . import build_info

    info = build_info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k:<{width}}  {v}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, Trainer

    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    trainer = Trainer(cfg, progress=not args.no_progress)
    hist = trainer.train()
    if hist and trainer.rank == 0:
        last = hist[-1]
        print(f"step {last['step']}: loss {last['loss']:.4f} psnr(train batch) {last['psnr_train']:.2f} dB "
              f"agreement {last['agree_train']:.3f}; checkpoint {cfg.out}/checkpoint.pt")
        if trainer.best > float("-inf"):
            print(f"best validation PSNR {trainer.best:.2f} dB: {cfg.out}/best.pt")
    return 0


def _cmd_import_authors(args: argparse.Namespace) -> int:
    from .models.authors import load_authors_checkpoint
    from .models.registry import save_ric

    model = load_authors_checkpoint(args.input, lam=args.lam)
    save_ric(args.out, model, extra={"source": "authors' checkpoint (csjunjun/RIC layout)"}, overwrite=False)
    print(f"RIC{model.config()} written to {args.out}")
    return 0


DEFAULT_MODEL = "bundled"


def _load_model(path: str, device: str):
    from .models.registry import bundled_model_path, load_ric

    return load_ric(bundled_model_path() if path == DEFAULT_MODEL else path).to(_device(device))


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _nae_from_args(args: argparse.Namespace):
    from .nae import NAEConfig

    return NAEConfig(c=args.nae_c, kappa=args.nae_kappa, steps=args.nae_steps, lr=args.nae_lr, stop=args.nae_stop,
                     extra_margin=args.nae_extra_margin, ct_margin=args.nae_ct_margin,
                     check_every=args.nae_check_every, check_margin=args.nae_check_margin, margin=args.nae_margin)


def _cipher(args: argparse.Namespace):
    from .cipher import Cipher
    from .keys import Key
    from .models.registry import load_classifier

    dev = _device(args.device)
    model = _load_model(args.model, args.device)
    clf = load_classifier(args.classifier, args.models).to(dev)
    return Cipher(model, clf, Key.load(args.key), _nae_from_args(args), batch_size=args.batch_size,
                  micro_batch=args.micro_batch or None)


def _cmd_keygen(args: argparse.Namespace) -> int:
    import os

    from .keys import Key

    if args.passphrase_env:
        pw = os.environ.get(args.passphrase_env)
        if not pw:
            raise SystemExit(f"environment variable {args.passphrase_env} is empty or unset")
        if not args.salt:
            raise SystemExit("--salt (hex) is required with --passphrase-env")
        key = Key.from_passphrase(pw, bytes.fromhex(args.salt))
    else:
        key = Key.generate()
    key.save(args.out, overwrite=False)
    print(f"wrote {args.out} (mode 0600), {key!r}")
    return 0


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from .folders import encrypt_folder

    n = encrypt_folder(_cipher(args), args.input, args.output, progress=not args.no_progress)
    print(f"encrypted {n} image(s) into {args.output}")
    return 0


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from .folders import decrypt_folder

    n = decrypt_folder(_cipher(args), args.input, args.output, progress=not args.no_progress)
    print(f"decrypted {n} image(s) into {args.output}")
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    import torch

    from .data import load_image
    from .folders import image_files
    from .models.registry import load_classifier

    dev = _device(args.device)
    clf = load_classifier(args.classifier, args.models).to(dev)
    for f in image_files(args.input):
        with torch.no_grad():
            label = int(clf(load_image(f).unsqueeze(0).to(dev)).argmax(1))
        print(f"{f}\t{label}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import data as data_mod
    from .evaluate import evaluate, format_table, write_report
    from .models.registry import load_classifier

    dev = _device(args.device)
    model = _load_model(args.model, args.device)
    clf = load_classifier(args.classifier, args.models).to(dev)
    if args.attacks:
        return _run_security(args, model, clf)
    ds = data_mod.dataset(args.dataset, args.split, args.data, args.size)
    if not 0 <= args.start < len(ds):
        raise ValueError(f"--start {args.start} is outside the split's {len(ds)} images")
    x, y = data_mod.stack(ds, list(range(args.start, min(args.start + args.n, len(ds)))))
    res = evaluate(model, clf, x, y, nae=_nae_from_args(args), batch_size=args.batch_size,
                   micro_batch=args.micro_batch or None, metric_mode=args.metric_mode)
    print(format_table(res))
    write_report(res, args.out)
    print(f"report: {args.out}/report.md")
    return 0


def _reference_images(args: argparse.Namespace, full, pool_idx: range):
    """The images behind the attack report's reference guesses (mean images), never the scored ones:
    the training split of SVHN, and of LFW when it is scored on its test split; otherwise the
    attacker's own pairs (``pool_idx`` of ``full``; the scored images follow them)."""
    from . import data as data_mod

    train = None
    if args.dataset == "svhn" or (args.dataset == "lfw" and args.split != "train"):
        train = data_mod.dataset(args.dataset, "train", args.data, args.size)
    if train is not None:
        tx, ty = data_mod.stack(train, list(range(min(len(train), args.reference_images))))
        return tx, ty, f"{tx.shape[0]} images of the {args.dataset} training split"
    tx, ty = data_mod.stack(full, list(pool_idx)[:args.reference_images])
    return tx, ty, f"{tx.shape[0]} images: the attacker's pairs ({args.dataset} {args.split} 0-{tx.shape[0] - 1})"


def _run_security(args: argparse.Namespace, model, clf) -> int:
    """``evaluate --attacks``: the threat models of SPEC.md on a fixed split (see ric_ext.security)."""
    import json

    from . import data as data_mod
    from .cipher import Cipher
    from .keys import Key
    from .security import SECTIONS, AttackConfig, InversionSettings, run_attacks, write_report

    names = list(SECTIONS) if args.attacks == "all" else [a.strip() for a in args.attacks.split(",") if a.strip()]
    cfg = AttackConfig(attacks=names, inversion=InversionSettings(epochs=args.attack_epochs, width=args.attack_width,
                                                                  seed=args.attack_seed),
                       reencrypt_images=args.reencrypt_images)
    n_pool, n_test = args.attack_pairs + args.attack_val, args.attack_test
    if args.dataset == "svhn":
        # The authors' split: pairs from test 1000-1499 (the paper subset), unseen test images 1500-1599.
        full = data_mod.svhn("test", args.data)
        pool_idx, test_idx = range(1000, 1000 + n_pool), range(1500, 1500 + n_test)
        desc = f"SVHN test indices {pool_idx.start}-{pool_idx.stop - 1} (attacker pairs), {test_idx.start}-{test_idx.stop - 1} (scored)"
    else:
        full = data_mod.dataset(args.dataset, args.split, args.data, args.size)
        pool_idx, test_idx = range(0, n_pool), range(n_pool, n_pool + n_test)
        desc = f"{args.dataset} {args.split} indices 0-{n_pool - 1} (attacker pairs), {n_pool}-{n_pool + n_test - 1} (scored)"
    if test_idx.stop > len(full):
        raise ValueError(f"the dataset has {len(full)} images; the attack needs {test_idx.stop}")
    attack_x, _ = data_mod.stack(full, list(pool_idx))
    test_x, _ = data_mod.stack(full, list(test_idx))
    tx, ty, ref_desc = _reference_images(args, full, pool_idx)
    key = Key.generate()
    cipher = Cipher(model, clf, key, _nae_from_args(args), batch_size=args.batch_size,
                    micro_batch=args.micro_batch or None)
    res = run_attacks(cipher, attack_x, test_x, tx, ty, cfg, n_val=args.attack_val,
                      log=lambda m: print(m, flush=True))
    context = {"model": args.model, "classifier": args.classifier, "key id": key.key_id + " (a fresh key)",
               "data": desc, "reference images": ref_desc,
               "NAE settings": json.dumps(cipher.nae.config.to_dict()), "micro_batch": cipher.micro_batch}
    write_report(res, args.out, context)
    print(open(f"{args.out}/report.md").read())
    print(f"report: {args.out}/report.md")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from .demo import run_demo

    t = time.perf_counter()
    res = run_demo(device=args.device, out=args.out)
    print(res["table"])
    print(f"(demo took {time.perf_counter() - t:.1f} s; {res['note']})")
    return 0


def _check_margin(v: str):
    if v.lower() == "none":
        return None
    if v == "kappa":
        return v
    return float(v)


def _add_cipher_args(p: argparse.ArgumentParser, needs_key: bool = True) -> None:
    from .nae import NAEConfig

    d = NAEConfig()
    if needs_key:
        p.add_argument("--key", required=True, help="key file from `ric-ext keygen`")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="RIC weights (.pt) or a bundled model by name: svhn | faces (default: the bundled SVHN model)")
    p.add_argument("--classifier", default="svhn",
                   help="svhn | cifar10-resnet20 | cifar10-resnet56 | lfw (our 62-identity LFW classifier, 64x64) "
                        "(default: %(default)s)")
    p.add_argument("--models", default=None, help="classifier folder (default: RIC_MODELS or ../shared/models)")
    p.add_argument("--nae-stop", default=d.stop, choices=["margin", "ciphertext", "fixed"],
                   help="when an image's NAE attack ends: its own margin reaches kappa + extra margin (margin), "
                        "its ciphertext is classified right with --nae-ct-margin (ciphertext), or after "
                        "--nae-steps with the authors' early stop (fixed) (default: %(default)s)")
    p.add_argument("--nae-steps", type=int, default=d.steps,
                   help="most attack steps per image (the exact count for --nae-stop fixed) (default: %(default)s)")
    p.add_argument("--nae-extra-margin", type=float, default=d.extra_margin,
                   help="adaptive rules: the attack aims at margin kappa + this, and the margin rule stops there "
                        "(default: %(default)s)")
    p.add_argument("--nae-ct-margin", type=float, default=d.ct_margin,
                   help="ciphertext rule: the ciphertext's margin that ends the attack (default: %(default)s)")
    p.add_argument("--nae-check-every", type=int, default=d.check_every,
                   help="ciphertext rule: steps between checks (default: %(default)s)")
    p.add_argument("--nae-check-margin", default=d.check_margin, type=_check_margin,
                   help="ciphertext rule: check only images whose NAE margin reached this: a number, 'kappa' "
                        "or 'none' (check from the start) (default: %(default)s)")
    p.add_argument("--nae-margin", default=d.margin, choices=["masked", "authors"],
                   help="C&W margin of the attack: masked (SPEC: best other logit) or authors (their code: the "
                        "target logit replaced by 0, more confident NAEs) (default: %(default)s)")
    p.add_argument("--nae-c", type=float, default=d.c, help="C&W weight c (default: %(default)s)")
    p.add_argument("--nae-kappa", type=float, default=d.kappa, help="C&W confidence kappa (default: %(default)s)")
    p.add_argument("--nae-lr", type=float, default=d.lr, help="attack Adam learning rate (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    p.add_argument("--micro-batch", type=int, default=32,
                   help="networks run on chunks of exactly this many rows, so an image decrypts to the same "
                        "bytes in any batch; 0 = whole batches (default: %(default)s)")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _field_comments(cls) -> dict:
    """The ``# comment`` after each dataclass field: one source for the config docs and the CLI help."""
    import inspect
    import re

    out = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if m:
            out[m.group(1)] = m.group(2).replace("%", "%%")
    return out


def _yes_no(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {s!r}")


def _add_train(sub) -> None:
    from .train import TrainConfig

    p = sub.add_parser("train", help="train the RIC networks (SPEC.md); resumes from <out>/checkpoint.pt")
    comments = _field_comments(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        default = f.default
        kind = {"int": int, "float": float, "str": str, "bool": _yes_no}.get(
            str(f.type).replace("Optional[", "").rstrip("]"), str)
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=default,
                       help=f"{comments.get(f.name, '')} (default: {default})".strip())
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ric-ext", description="Recoverable privacy-preserving image classification")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print what the native kernels were built with")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)
    _add_train(sub)

    kg = sub.add_parser("keygen", help="create a key file (mode 0600)")
    kg.add_argument("--out", required=True, help="key file to create (never overwritten)")
    kg.add_argument("--passphrase-env", help="derive the key with scrypt from this environment variable")
    kg.add_argument("--salt", help="hex salt for --passphrase-env (>= 8 bytes)")
    kg.set_defaults(func=_cmd_keygen)

    for name, fn, what in (("encrypt", _cmd_encrypt, "images"), ("decrypt", _cmd_decrypt, "ciphertext PNGs")):
        c = sub.add_parser(name, help=f"{name} a file or folder of {what}")
        c.add_argument("--input", required=True)
        c.add_argument("--output", required=True, help="output folder (existing files are never overwritten)")
        _add_cipher_args(c)
        c.set_defaults(func=fn)

    cl = sub.add_parser("classify", help="labels of the unmodified classifier for images or ciphertexts")
    cl.add_argument("--input", required=True, help="an image file or a folder of images")
    cl.add_argument("--classifier", default="svhn",
                    help="svhn | cifar10-resnet20 | cifar10-resnet56 | lfw (default: %(default)s)")
    cl.add_argument("--models", default=None, help="classifier folder (default: RIC_MODELS or ../shared/models)")
    cl.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: %(default)s)")
    cl.set_defaults(func=_cmd_classify)

    ev = sub.add_parser("evaluate", help="SPEC.md's evaluation: accuracy, PSNR/SSIM/MAE, dissimilarity, wrong key; "
                                         "--attacks adds the security evaluation")
    ev.add_argument("--dataset", default="svhn", help="svhn | cifar10 | lfw | an image folder (default: %(default)s)")
    ev.add_argument("--split", default="paper",
                    help="svhn: train | test | paper (test indices 1000-1499); lfw: train | test (default: %(default)s)")
    ev.add_argument("--data", default=None, help="data folder (default: RIC_DATA or ../shared/data)")
    ev.add_argument("--size", type=int, default=None, help="image size for LFW / image folders")
    ev.add_argument("--n", type=int, default=500, help="number of images (default: %(default)s)")
    ev.add_argument("--start", type=int, default=0, help="index of the first image in the split (default: %(default)s)")
    ev.add_argument("--out", default="runs/eval", help="report folder (default: %(default)s)")
    ev.add_argument("--metric-mode", choices=("ours", "paper"), default="ours",
                    help="paper: also the authors' metrics (PSNR of the unrounded reconstruction; SSIM with "
                         "their uniform 11x11 window and scikit-image's default 7x7) (default: %(default)s)")
    ev.add_argument("--attacks", default=None,
                    help="run the security evaluation instead: 'all' or a comma list of "
                         "inversion,keys,ciphertext_only,robustness,baselines (see ric_ext.security)")
    ev.add_argument("--attack-pairs", type=int, default=450,
                    help="attacks: known (ciphertext, plaintext) training pairs (default: %(default)s)")
    ev.add_argument("--attack-val", type=int, default=50, help="attacks: the attacker's validation pairs (default: %(default)s)")
    ev.add_argument("--attack-test", type=int, default=100, help="attacks: unseen images scored (default: %(default)s)")
    ev.add_argument("--attack-epochs", type=int, default=60, help="attacks: U-Net training epochs (default: %(default)s)")
    ev.add_argument("--attack-width", type=int, default=32, help="attacks: U-Net base width (default: %(default)s)")
    ev.add_argument("--attack-seed", type=int, default=0, help="attacks: U-Net init/data-order seed (default: %(default)s)")
    ev.add_argument("--reencrypt-images", type=int, default=10,
                    help="attacks: images encrypted 32 times each for the re-encryption test (default: %(default)s)")
    ev.add_argument("--reference-images", type=int, default=8000,
                    help="attacks: training images for the mean-image baselines (default: %(default)s)")
    _add_cipher_args(ev, needs_key=False)
    ev.set_defaults(func=_cmd_evaluate)

    ia = sub.add_parser("import-authors", help="convert a checkpoint of the authors' code (Net.m1/m2/m3 = "
                                               "Prep/Hiding/Reveal) into ric_ext RIC weights")
    ia.add_argument("--input", required=True, help="their checkpoint, e.g. Weights/Svhn.pth.tar")
    ia.add_argument("--out", required=True, help="RIC weights file to create (never overwritten)")
    ia.add_argument("--lam", type=float, default=0.8, help="their lambda_net (default: %(default)s)")
    ia.set_defaults(func=_cmd_import_authors)

    de = sub.add_parser("demo", help="encrypt -> classify -> decrypt bundled sample images with bundled weights")
    de.add_argument("--device", default="cpu")
    de.add_argument("--out", default=None, help="also write the report (grid, JSON) to this folder")
    de.set_defaults(func=_cmd_demo)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import RicError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RicError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"ric-ext {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
