"""Command line: ``python -m ric_ext <command>`` (also installed as ``ric-ext``).

Commands: info, keygen, encrypt, decrypt, reencrypt, classify, serve, train, evaluate, models, import-authors,
demo.
Each command parses its options and calls the library; settings come from their
dataclasses (:mod:`ric_ext.options`), never from lists written here.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

CLASSIFIER_HELP = (
    "svhn | cifar10-resnet20 | cifar10-resnet56 | lfw (62 LFW identities, 64x64) | lfw160 | a name from "
    "`ric-ext models list` | a .pt2 / TorchScript file | package.module:function"
)
MODELS_HELP = "classifier folder (default: RIC_MODELS, else bundled classifiers only)"
DEVICE_HELP = "cpu | cuda | cuda:N | auto (default: %(default)s)"


# -- helpers -------------------------------------------------------------------------------
def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_model(name: str, device: str):
    from .models.registry import load_ric

    return load_ric(name).to(_device(device))


def _classifier(args: argparse.Namespace, model=None):
    """--classifier; when it is not given: decrypt's files name theirs by fingerprint, a RIC model
    names the one it was trained against (:mod:`ric_ext.models.settings`), else svhn."""
    from .models import settings
    from .models.classifiers import fingerprint
    from .models.registry import find_classifier, load_classifier

    name = args.classifier
    if name is None and args.command in ("decrypt", "reencrypt"):  # the one the files were made for
        name = find_classifier(str(_first_header(args).get("classifier")), args.models)
    carried = settings.of(model).get("classifier")
    if name is None and carried:
        try:
            clf = load_classifier(carried["name"], args.models)
        except (FileNotFoundError, ValueError):  # moved or renamed: find it by its fingerprint
            clf = None
        if clf is not None and carried.get("fingerprint") in (None, fingerprint(clf)):
            return clf.to(_device(args.device))
        name = find_classifier(str(carried.get("fingerprint")), args.models)
    return load_classifier(name or "svhn", args.models).to(_device(args.device))


def _carried_name(model) -> str:
    from .models import settings

    return (settings.of(model).get("classifier") or {}).get("name", "svhn")


def _size(args: argparse.Namespace, classifier) -> Optional[int]:
    """--size, else the classifier's own input size (None: images are taken as they are)."""
    if args.size is not None:
        from .checks import check_int

        return check_int("--size", args.size, 1)
    return getattr(classifier, "input_size", None)


def _nae(args: argparse.Namespace, model=None, classifier=None, scheme: str = "pad"):
    """The NAE settings: the --nae-* options given, over the digits scheme's own (DIGITS_NAE) or, for the
    replayed schemes, those the model (else the classifier) carries."""
    import dataclasses

    from .cipher import DIGITS_NAE
    from .models.settings import nae_defaults
    from .nae import NAEConfig

    if scheme == "digits":
        base = DIGITS_NAE.to_dict()
    else:
        base = nae_defaults(model, classifier) or NAEConfig().to_dict()
    given = {
        f.name: getattr(args, "nae_" + f.name) for f in dataclasses.fields(NAEConfig) if hasattr(args, "nae_" + f.name)
    }
    return NAEConfig.from_dict({**NAEConfig().to_dict(), **base, **given})


def _scheme(args: argparse.Namespace) -> str:
    """The scheme to use: --scheme, or for 'auto' the one decrypt's input files name, else the
    paper's scheme when --model is given (the networks are that scheme's) and the digits scheme otherwise."""
    if args.scheme != "auto":
        scheme = args.scheme
    elif args.command == "decrypt":
        scheme = _first_header(args).get("scheme", "paper")
    else:
        scheme = "paper" if args.model else "digits"
        if scheme == "paper" and args.command == "encrypt":
            from .errors import PAPER_SCHEME_LEAKS

            print(f"warning: {PAPER_SCHEME_LEAKS}", file=sys.stderr)
    if scheme == "paper" and not args.model:
        if args.command == "decrypt":  # the header names the weights; find them among the known ones
            from .models.registry import model_for_fingerprint

            fp = str(_first_header(args).get("model"))
            args.model = model_for_fingerprint(fp)
            if args.model is None:
                from .models import store
                from .models.registry import archive_dir

                raise ValueError(
                    f"these files were made with unknown RIC weights (fingerprint {fp[:16]}...): not among the "
                    f"bundled models, the archive ({archive_dir() or 'none'}) or the model store "
                    f"({store.store_dir()}); pass them with --model FILE or add them with `ric-ext models add FILE`"
                )
        else:
            raise ValueError("the paper scheme needs --model (a weights file or a bundled name: svhn, faces, ...)")
    return scheme


def _first_header(args: argparse.Namespace) -> dict:
    """The (unauthenticated) header of the first input file: it only chooses settings."""
    from .fileformat import peek_header
    from .folders import image_files

    return peek_header(image_files(args.input)[0])


def _bank(args: argparse.Namespace):
    """--bank: 'auto', 'none' (None) or a file."""
    return None if args.bank == "none" else args.bank


def _cipher(args: argparse.Namespace):
    from .cipher import Cipher
    from .keys import Key

    scheme = _scheme(args)
    key = Key.load(args.key)
    if scheme == "digits" and args.command == "decrypt":  # the key alone: no classifier, no network
        return Cipher.from_ciphertext(_first_header(args), key, batch_size=args.batch_size, device=_device(args.device))
    # the digits and pad schemes have no networks: --model is not loaded
    model = None if scheme != "paper" else _load_model(args.model, args.device)
    clf = _classifier(args, model)
    return Cipher(
        model,
        clf,
        key,
        _nae(args, model, clf, scheme),
        batch_size=args.batch_size,
        micro_batch=args.micro_batch or None,
        scheme=scheme,
        pad_a=args.pad_a,
        base=args.base,
        bank=_bank(args),
        precision=args.precision,
        progress=not args.no_progress,
    )


def _file_reporter(args: argparse.Namespace):
    """Prints one line per file written (each rank its own): its path and whether the image travels
    losslessly (digits scheme)."""
    if args.no_report:
        return None
    from tqdm import tqdm

    def report(path: str, lossless) -> None:
        if lossless is not None:
            tqdm.write(f"{path}\t{'lossless' if lossless else 'lossy (the image did not compress into the share)'}")

    return report


# -- commands ------------------------------------------------------------------------------
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
    from .options import from_options
    from .training import TrainConfig, Trainer

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


def _cmd_import_authors(args: argparse.Namespace) -> int:
    from .models.authors import load_authors_checkpoint
    from .models.registry import save_ric

    model = load_authors_checkpoint(args.input, lam=args.lam)
    save_ric(args.out, model, extra={"source": "authors' checkpoint (csjunjun/RIC layout)"}, overwrite=False)
    print(f"RIC{model.config()} written to {args.out}")
    return 0


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


def _nonce_seed(args: argparse.Namespace) -> Optional[bytes]:
    """--nonce-seed as 32 bytes (None: a fresh random seed)."""
    if args.nonce_seed is None:
        return None
    try:
        seed = bytes.fromhex(args.nonce_seed)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ValueError("--nonce-seed must be 64 hex digits (32 bytes)")
    return seed


def _cmd_encrypt(args: argparse.Namespace) -> int:
    from .folders import encrypt_folder

    cipher = _cipher(args)
    n = encrypt_folder(
        cipher,
        args.input,
        args.output,
        progress=not args.no_progress,
        size=_size(args, cipher.classifier),
        resume=args.resume,
        nonce_seed=_nonce_seed(args),
        on_file=_file_reporter(args),
    )
    _report("encrypted", n, args.output)
    return 0


def _cmd_reencrypt(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .cipher import Cipher
    from .folders import reencrypt_folder
    from .keys import Key

    old_key = Key.load(args.key)
    new_key = Key.load(args.new_key) if args.new_key else old_key
    clf = _classifier(args)
    cipher = Cipher(
        None,
        clf,
        new_key,
        _nae(args, None, clf, "digits"),
        batch_size=args.batch_size,
        scheme="digits",
        base=args.base,
        bank=_bank(args),
        precision=args.precision,
        progress=not args.no_progress,
    )

    def report(path: str, lossless: bool, replayed_format: Optional[int]) -> None:
        line = f"{path}\t{'lossless' if lossless else 'lossy (as the old file was)'}"
        if replayed_format is not None:
            line += (
                f"\tfrom format {replayed_format}, a replayed format: the new file holds the bytes it decrypts to "
                "on this machine, and decrypts with the key alone from now on"
            )
        tqdm.write(line)

    n = reencrypt_folder(
        cipher,
        old_key,
        args.input,
        args.output,
        models=args.models,
        progress=not args.no_progress,
        resume=args.resume,
        nonce_seed=_nonce_seed(args),
        on_file=None if args.no_report else report,
    )
    _report("re-encrypted", n, args.output)
    return 0


def _report(what: str, n: int, out: str) -> None:
    from .distributed import rank_and_world

    if rank_and_world()[0] == 0:  # under torchrun, n counts every rank's files
        print(f"{what} {n} image(s) into {out}")


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from .folders import decrypt_folder

    n = decrypt_folder(
        _cipher(args),
        args.input,
        args.output,
        progress=not args.no_progress,
        resume=args.resume,
        on_file=_file_reporter(args),
    )
    _report("decrypted", n, args.output)
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    import torch

    from .data import load_image
    from .folders import image_files

    files = image_files(args.input)
    header = _ciphertext_header(files[0])
    if args.url:  # the cloud's classifier: only the pixels travel (ric_ext.serve)
        from .serve import remote_classify, remote_input

        remote = args.remote_model or _header_model_name(header, args.models) or "svhn"
        channels, size = remote_input(args.url, remote)  # what the server's model takes
        size = args.size if args.size is not None else size
        images = ((f, load_image(f, channels, size)) for f in files)
        for f, label in remote_classify(images, args.url, remote, args.batch_size):
            print(f"{f}\t{label}")
        return 0
    if args.classifier is None and header is not None:  # the classifier the ciphertexts were made for
        from .models.registry import find_classifier

        args.classifier = find_classifier(str(header.get("classifier")), args.models)
    clf = _classifier(args)
    dev = _device(args.device)
    size = _size(args, clf)
    for f in files:
        with torch.no_grad():
            label = int(clf(load_image(f, getattr(clf, "channels", 3), size).unsqueeze(0).to(dev)).argmax(1))
        print(f"{f}\t{label}")
    return 0


def _ciphertext_header(path: str) -> Optional[dict]:
    """The (unauthenticated) ric_ext header of ``path``, or None when it is a plain image."""
    from .errors import CiphertextFormatError
    from .fileformat import peek_header

    try:
        return peek_header(path)
    except CiphertextFormatError:
        return None


def _header_model_name(header: Optional[dict], models: Optional[str]) -> Optional[str]:
    """The served model's name for the classifier a ciphertext header names: the name it records
    (format 4), else the built-in or stored classifier with its fingerprint."""
    if header is None:
        return None
    if header.get("classifier_name"):
        return str(header["classifier_name"])
    from .models.registry import find_classifier

    try:
        return find_classifier(str(header.get("classifier")), models)
    except FileNotFoundError:
        return None


def _cmd_serve(args: argparse.Namespace) -> int:
    from .serve import check_serve_extra, model_name_for, serve

    check_serve_extra()  # before loading anything: a missing extra is a one-line message
    clf = _classifier(args)
    name = args.name or model_name_for(args.classifier)
    print(f"serving classifier {name!r} (KServe v2 REST) on http://{args.host}:{args.port}", flush=True)
    serve(
        clf,
        name=name,
        host=args.host,
        port=args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_batch=args.max_batch,
        device=str(_device(args.device)),
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    scheme = {"scheme": _scheme(args), "pad_a": args.pad_a, "base": args.base}
    model = None if scheme["scheme"] != "paper" else _load_model(args.model, args.device)
    clf = _classifier(args, model)
    nae = _nae(args, model, clf, scheme["scheme"])
    if args.attacks:
        from .options import from_options
        from .security.protocol import ProtocolSettings, parse_sections, run_protocol

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
                "classifier": args.classifier or _carried_name(model),
            },
            log=lambda m: print(m, flush=True),
            **scheme,
        )
        with open(f"{args.out}/report.md") as f:
            print(f.read())
        print(f"report: {args.out}/report.md")
        return 0
    from . import data as data_mod
    from .evaluate import evaluate, format_table, write_report

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


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import store

    if args.action == "add":
        e = store.add(args.file, args.name)
        print(f"{e['name']}: {e['kind']} {e['fingerprint'][:16]}... in {store.path_of(e)}")
        return 0
    items = store.entries()
    if args.json:
        print(json.dumps(items, indent=2))
    elif not items:
        print(f"the model store is empty ({store.store_dir()}); add a file with `ric-ext models add FILE`")
    else:
        print(f"model store: {store.store_dir()}")
        for e in items:
            print(f"{e['name']}\t{e['kind']}\t{e['fingerprint'][:16]}\t{e['file']}\t{e['added']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import time

    from .demo import run_demo

    t = time.perf_counter()
    res = run_demo(device=args.device, out=args.out, scheme=args.scheme)
    print(res["table"])
    print(f"(demo took {time.perf_counter() - t:.1f} s; {res['note']})")
    return 0


# -- the parser ------------------------------------------------------------------------------
def _add_classifier_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--classifier",
        default=None,
        help=CLASSIFIER_HELP + " (default: svhn; decrypt and classify: the one the ciphertexts were made for)",
    )
    p.add_argument("--models", default=None, help=MODELS_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _add_cipher_args(p: argparse.ArgumentParser, needs_key: bool = True) -> None:
    from .batching import DEFAULT_MICRO_BATCH
    from .ops.pad import DEFAULT_A
    from .schemes import SCHEMES

    if needs_key:
        p.add_argument("--key", required=True, help="key file from `ric-ext keygen`")
    p.add_argument(
        "--scheme",
        default="auto",
        choices=("auto", *SCHEMES),
        help="digits: the image in the low digit of each byte under a keyed pad, decrypted exactly with the key "
        "alone (docs/scheme.md#digits); pad: the format-3 float pad, decrypted by replaying the attack; paper: "
        "the paper's learned encoder (needs --model); auto: decrypt takes the scheme its files name, the other "
        "commands paper when --model is given and digits otherwise (default: %(default)s)",
    )
    _add_digits_args(p)
    p.add_argument(
        "--pad-a",
        type=float,
        default=DEFAULT_A,
        help="pad scheme: the share's scale, its guard against the 8-bit rounding (default: %(default)s)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the paper scheme's RIC weights: a .pt file or a bundled model by name (svhn | faces | svhn-v1.. | "
        "faces-v1..); not needed by the pad scheme",
    )
    _add_classifier_args(p)
    _add_nae_args(p)
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=DEFAULT_MICRO_BATCH,
        help="networks run on chunks of exactly this many rows, so an image decrypts to the same "
        "bytes in any batch; 0 = whole batches (default: %(default)s)",
    )
    _add_output_args(p)


def _add_digits_args(p: argparse.ArgumentParser) -> None:
    """The digits scheme's own options."""
    from .nae_digits import PRECISIONS
    from .schemes import DIGITS_BASE

    p.add_argument(
        "--base",
        type=int,
        default=DIGITS_BASE,
        help="digits scheme: the share's digit base; the NAE digit takes 256 // BASE values (default: %(default)s)",
    )
    p.add_argument(
        "--bank",
        default="auto",
        help="digits scheme: where each image's attack starts: auto (the classifier's bundled NAE bank, or one "
        "trained and cached in RIC_HOME on first use), none (the keyed noise), or a bank file (default: %(default)s)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="digits scheme: the attack steps' precision (the check is always float32); auto: bf16 where the "
        "device has native bfloat16, else fp32 (default: %(default)s)",
    )


def _add_nae_args(p: argparse.ArgumentParser) -> None:
    """--nae-*: generated from NAEConfig; an option not given keeps the scheme's, model's or classifier's own."""
    import dataclasses

    from .nae import NAEConfig
    from .options import add_options

    unset = {f.name: argparse.SUPPRESS for f in dataclasses.fields(NAEConfig)}
    add_options(p, NAEConfig, prefix="nae", defaults=unset, unset_note="the model's (or classifier's) own setting")


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="encrypt/decrypt/reencrypt: no per-file line (lossless or lossy) on stdout",
    )


def _add_folder_job_args(p: argparse.ArgumentParser, what: str, nonces: bool) -> None:
    """--input, --output, --resume (and --nonce-seed for the commands that draw nonces)."""
    p.add_argument("--input", required=True, help=f"a file or a folder of {what} (searched recursively)")
    p.add_argument("--output", required=True, help="output folder (existing files are never overwritten)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted job: outputs that exist are verified and kept, only missing ones are made",
    )
    if nonces:
        p.add_argument(
            "--nonce-seed",
            default=None,
            help="64 hex digits: derive the nonces from this seed instead of a fresh random one, for a "
            "reproducible run (the image's bytes enter each nonce, so a repeated seed repeats a nonce only "
            "for the same image at the same name)",
        )


def _add_reencrypt(sub) -> None:
    r = sub.add_parser(
        "reencrypt",
        help="re-encrypt ciphertext PNGs (any format) under a new key, classifier, base or bank, into format 4, "
        "without writing the plaintext anywhere; each new file is checked to decrypt to the old file's bytes",
    )
    r.add_argument("--key", required=True, help="the key the input files were made under")
    r.add_argument("--new-key", default=None, help="the key of the new files (default: --key, with fresh nonces)")
    _add_folder_job_args(r, "ciphertext PNGs", nonces=True)
    _add_digits_args(r)
    r.add_argument(
        "--classifier",
        default=None,
        help=CLASSIFIER_HELP + " (default: the classifier the input files were made for)",
    )
    r.add_argument("--models", default=None, help=MODELS_HELP + "; formats 1-3 also find their own classifier there")
    r.add_argument("--device", default="auto", help=DEVICE_HELP)
    _add_nae_args(r)
    r.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    _add_output_args(r)
    r.set_defaults(func=_cmd_reencrypt)


def _add_train(sub) -> None:
    from .options import add_options
    from .training import TrainConfig

    p = sub.add_parser("train", help="train the RIC networks (docs/scheme.md#training); resumes from OUT/checkpoint.pt")
    add_options(p, TrainConfig)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _add_evaluate(sub) -> None:
    from .options import add_options
    from .security.protocol import ProtocolSettings

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
    from .security.attacks import SECTIONS

    ev.add_argument(
        "--attacks",
        default=None,
        help=f"run the security evaluation instead: 'all' or a comma list of {','.join(SECTIONS)} "
        "(docs/security.md). The public-model attacker keeps its work in OUT/.ric_attack_checkpoint: "
        "rerun an interrupted command to resume it",
    )
    add_options(ev, ProtocolSettings)
    _add_cipher_args(ev, needs_key=False)
    ev.set_defaults(func=_cmd_evaluate)


def _add_models(sub) -> None:
    m = sub.add_parser(
        "models",
        help="the user's model store (RIC_HOME, default ~/.cache/ric_ext): RIC weights and classifier files, "
        "found by name or by the fingerprints in a ciphertext's header",
    )
    actions = m.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="copy a RIC weights file or a .pt2 / TorchScript classifier into the store")
    add.add_argument("file", help="the file (a classifier's FILE.json sidecar is copied with it)")
    add.add_argument("--name", default=None, help="its name in the store (default: the file name without suffix)")
    ls = actions.add_parser("list", help="list the stored models: name, kind, fingerprint, file, date added")
    ls.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(func=_cmd_models)


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
        if name == "encrypt":
            c.add_argument(
                "--size",
                type=int,
                default=None,
                help="centre-crop and resize every image to SIZE x SIZE first (default: the "
                "classifier's input size, e.g. 32 for svhn, 64 for lfw; images of another "
                "size are cropped and resized to it)",
            )
        _add_folder_job_args(c, what, nonces=name == "encrypt")
        _add_cipher_args(c)
        c.set_defaults(func=fn)
    _add_reencrypt(sub)

    cl = sub.add_parser("classify", help="labels of the unmodified classifier for images or ciphertexts")
    cl.add_argument("--input", required=True, help="an image file or a folder of images")
    cl.add_argument(
        "--size",
        type=int,
        default=None,
        help="centre-crop and resize to SIZE x SIZE first (default: the classifier's input size; with --url, "
        "the size the server's model states)",
    )
    _add_classifier_args(cl)
    cl.add_argument(
        "--url",
        default=None,
        help="classify on a KServe v2 server (`ric-ext serve`, Triton, MLServer, ...) at http://HOST:PORT "
        "instead of locally; only the pixels are sent",
    )
    cl.add_argument(
        "--remote-model",
        default=None,
        help="with --url: the model's name on the server (default: the classifier the ciphertexts' header names, "
        "else svhn)",
    )
    cl.add_argument("--batch-size", type=int, default=64, help="with --url: images per request (default: %(default)s)")
    cl.set_defaults(func=_cmd_classify)

    sv = sub.add_parser(
        "serve",
        help="serve an unmodified classifier over the Open Inference Protocol (KServe v2 REST), as the cloud does",
    )
    _add_classifier_args(sv)
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    sv.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    sv.add_argument(
        "--name", default=None, help="the model's name on the server (default: the classifier's name or file stem)"
    )
    sv.add_argument(
        "--max-body-mb", type=float, default=64, help="larger request bodies get 413 (default: %(default)s MiB)"
    )
    sv.add_argument("--max-batch", type=int, default=1024, help="images per request at most (default: %(default)s)")
    sv.set_defaults(func=_cmd_serve)

    _add_evaluate(sub)
    _add_models(sub)

    ia = sub.add_parser(
        "import-authors",
        help="convert a checkpoint of the authors' code (Net.m1/m2/m3 = Prep/Hiding/Reveal) into ric_ext RIC weights",
    )
    ia.add_argument("--input", required=True, help="their checkpoint, e.g. Weights/Svhn.pth.tar")
    ia.add_argument("--out", required=True, help="RIC weights file to create (never overwritten)")
    ia.add_argument("--lam", type=float, default=0.8, help="their lambda_net (default: %(default)s)")
    ia.set_defaults(func=_cmd_import_authors)

    de = sub.add_parser("demo", help="encrypt -> classify -> decrypt bundled sample images with bundled weights")
    de.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    de.add_argument("--out", default=None, help="also write the report (grid, JSON) to this folder")
    de.add_argument(
        "--scheme",
        default="digits",
        choices=("digits", "pad", "paper"),
        help="digits (exact, no networks), pad (format 3) or paper (the bundled SVHN networks) (default: %(default)s)",
    )
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
