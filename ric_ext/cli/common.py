"""What the commands share: loading the classifier, key and cipher an invocation names, and the
options several commands take (generated from the settings dataclasses where they exist)."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

CLASSIFIER_HELP = (
    "svhn | cifar10-resnet20 | cifar10-resnet56 | lfw (62 LFW identities, 64x64) | lfw160 | a name from "
    "`ric-ext models list` | a .pt2 / TorchScript file | package.module:function"
)
MODELS_HELP = "classifier folder (default: RIC_MODELS, else bundled classifiers only)"
DEVICE_HELP = "cpu | cuda | cuda:N | auto (default: %(default)s)"


def device_of(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_model(name: str, device: str):
    from ..models.registry import load_ric

    return load_ric(name).to(device_of(device))


def classifier_of(args: argparse.Namespace, model=None):
    """--classifier; when it is not given: decrypt's files name theirs by fingerprint, a RIC model
    names the one it was trained against (:mod:`ric_ext.models.settings`), else svhn."""
    from ..models import settings
    from ..models.classifiers import fingerprint
    from ..models.registry import find_classifier, load_classifier

    name = args.classifier
    if name is None and args.command in ("decrypt", "reencrypt"):  # the one the files were made for
        name = find_classifier(str(first_header(args).get("classifier")), args.models)
    carried = settings.of(model).get("classifier")
    if name is None and carried:
        try:
            clf = load_classifier(carried["name"], args.models)
        except (FileNotFoundError, ValueError):  # moved or renamed: find it by its fingerprint
            clf = None
        if clf is not None and carried.get("fingerprint") in (None, fingerprint(clf)):
            return clf.to(device_of(args.device))
        name = find_classifier(str(carried.get("fingerprint")), args.models)
    return load_classifier(name or "svhn", args.models).to(device_of(args.device))


def carried_name(model) -> str:
    from ..models import settings

    return (settings.of(model).get("classifier") or {}).get("name", "svhn")


def size_of(args: argparse.Namespace, classifier) -> Optional[int]:
    """--size, else the classifier's own input size (None: images are taken as they are)."""
    if args.size is not None:
        from ..checks import check_int

        return check_int("--size", args.size, 1)
    return getattr(classifier, "input_size", None)


def nae_of(args: argparse.Namespace, model=None, classifier=None, scheme: str = "pad"):
    """The NAE settings: the --nae-* options given, over the digits scheme's own (DIGITS_NAE) or, for the
    replayed schemes, those the model (else the classifier) carries."""
    import dataclasses

    from ..engines import DIGITS_NAE
    from ..models.settings import nae_defaults
    from ..nae import NAEConfig

    if scheme == "digits":
        base = DIGITS_NAE.to_dict()
    else:
        base = nae_defaults(model, classifier) or NAEConfig().to_dict()
    given = {
        f.name: getattr(args, "nae_" + f.name) for f in dataclasses.fields(NAEConfig) if hasattr(args, "nae_" + f.name)
    }
    return NAEConfig.from_dict({**NAEConfig().to_dict(), **base, **given})


def scheme_of(args: argparse.Namespace) -> str:
    """The scheme to use: --scheme, or for 'auto' the one decrypt's input files name, else the
    paper's scheme when --model is given (the networks are that scheme's) and the digits scheme otherwise."""
    if args.scheme != "auto":
        scheme = args.scheme
    elif args.command == "decrypt":
        scheme = first_header(args).get("scheme", "paper")
    else:
        scheme = "paper" if args.model else "digits"
        if scheme == "paper" and args.command == "encrypt":
            from ..errors import PAPER_SCHEME_LEAKS

            print(f"warning: {PAPER_SCHEME_LEAKS}", file=sys.stderr)
    if scheme == "paper" and not args.model:
        if args.command == "decrypt":  # the header names the weights; find them among the known ones
            from ..models.registry import model_for_fingerprint

            fp = str(first_header(args).get("model"))
            args.model = model_for_fingerprint(fp)
            if args.model is None:
                from ..models import store
                from ..models.registry import archive_dir

                raise ValueError(
                    f"these files were made with unknown RIC weights (fingerprint {fp[:16]}...): not among the "
                    f"bundled models, the archive ({archive_dir() or 'none'}) or the model store "
                    f"({store.store_dir()}); pass them with --model FILE or add them with `ric-ext models add FILE`"
                )
        else:
            raise ValueError("the paper scheme needs --model (a weights file or a bundled name: svhn, faces, ...)")
    return scheme


def first_header(args: argparse.Namespace) -> dict:
    """The (unauthenticated) header of the first input file: it only chooses settings."""
    from ..fileformat import peek_header
    from ..folders import image_files

    return peek_header(image_files(args.input)[0])


def bank_of(args: argparse.Namespace):
    """--bank: 'auto', 'none' (None) or a file; --portable: 'portable'."""
    if getattr(args, "portable", False):
        return "portable"
    return None if args.bank == "none" else args.bank


def ensemble_of(args: argparse.Namespace, classifier) -> list:
    """--ensemble NAME,NAME,...: the members, each checked against the crafting classifier (input size,
    channels and classes) before anything is read or written; ValueError names a member that differs."""
    from ..bank import check_ensemble
    from ..models.registry import load_classifier

    names = [n.strip() for n in (getattr(args, "ensemble", None) or "").split(",") if n.strip()]
    members = [load_classifier(n, args.models).to(device_of(args.device)) for n in names]
    size = getattr(classifier, "input_size", None)
    for n, m in zip(names, members):
        if getattr(m, "input_size", None) not in (None, size) and size is not None:
            raise ValueError(f"--ensemble member {n!r} takes {m.input_size}px images; the classifier takes {size}px")
        if getattr(m, "channels", 3) != getattr(classifier, "channels", 3):
            raise ValueError(
                f"--ensemble member {n!r} takes {m.channels} channels; the classifier takes {classifier.channels}"
            )
    if members and size is not None:
        shape = (getattr(classifier, "channels", 3), size, size)
        try:
            check_ensemble(classifier, members, shape)
        except ValueError as exc:
            raise ValueError(f"--ensemble: {exc}") from None
    return members


def cipher_of(args: argparse.Namespace):
    from ..cipher import Cipher
    from ..keys import Key

    scheme = scheme_of(args)
    key = Key.load(args.key)
    if scheme == "digits" and args.command == "decrypt":  # the key alone: no classifier, no network
        dev = device_of(args.device)
        return Cipher.from_ciphertext(first_header(args), key, batch_size=args.batch_size, device=dev)
    # the digits and pad schemes have no networks: --model is not loaded
    model = None if scheme != "paper" else load_model(args.model, args.device)
    clf = classifier_of(args, model)
    return Cipher.for_scheme(
        scheme,
        clf,
        key,
        model=model,
        nae=nae_of(args, model, clf, scheme),
        batch_size=args.batch_size,
        micro_batch=args.micro_batch or None,
        pad_a=args.pad_a,
        base=args.base,
        bank=bank_of(args),
        precision=args.precision,
        progress=not args.no_progress,
        ensemble=ensemble_of(args, clf),
    )


def file_reporter(args: argparse.Namespace):
    """Prints one line per file written (each rank its own): its path and whether the image travels
    losslessly (digits scheme)."""
    if args.no_report:
        return None
    from tqdm import tqdm

    def report(path: str, lossless) -> None:
        if lossless is not None:
            tqdm.write(f"{path}\t{'lossless' if lossless else 'lossy (the image did not compress into the share)'}")

    return report


def report_count(what: str, n: int, out: str) -> None:
    from ..distributed import rank_and_world

    if rank_and_world()[0] == 0:  # under torchrun, n counts every rank's files
        print(f"{what} {n} image(s) into {out}")


def nonce_seed_of(args: argparse.Namespace) -> Optional[bytes]:
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


def add_classifier_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--classifier",
        default=None,
        help=CLASSIFIER_HELP + " (default: svhn; decrypt and classify: the one the ciphertexts were made for)",
    )
    p.add_argument("--models", default=None, help=MODELS_HELP)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_cipher_args(p: argparse.ArgumentParser, needs_key: bool = True) -> None:
    from ..batching import DEFAULT_MICRO_BATCH
    from ..ops.pad import DEFAULT_A
    from ..schemes import SCHEMES

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
    add_digits_args(p)
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
    add_classifier_args(p)
    add_nae_args(p)
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    p.add_argument(
        "--micro-batch",
        type=int,
        default=DEFAULT_MICRO_BATCH,
        help="networks run on chunks of exactly this many rows, so an image decrypts to the same "
        "bytes in any batch; 0 = whole batches (default: %(default)s)",
    )
    add_output_args(p)


def add_digits_args(p: argparse.ArgumentParser) -> None:
    """The digits scheme's own options."""
    from ..nae_digits import PRECISIONS
    from ..schemes import DIGITS_BASE

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
        "--portable",
        action="store_true",
        help="digits scheme: start from the classifier's portable NAE bank (issue 36: trained over other "
        "classifiers of the task and what a cloud does to uploads), trained over --ensemble on first use",
    )
    p.add_argument(
        "--ensemble",
        default=None,
        metavar="NAME,NAME,...",
        help="digits scheme: other classifiers of the task (names as --classifier) that must also label every "
        "ciphertext as intended; their fingerprints go in the header",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="digits scheme: the attack steps' precision (the check is always float32); auto: bf16 where the "
        "device has native bfloat16, else fp32 (default: %(default)s)",
    )


def add_nae_args(p: argparse.ArgumentParser) -> None:
    """--nae-*: generated from NAEConfig; an option not given keeps the scheme's, model's or classifier's own."""
    import dataclasses

    from ..nae import NAEConfig
    from ..options import add_options

    unset = {f.name: argparse.SUPPRESS for f in dataclasses.fields(NAEConfig)}
    add_options(p, NAEConfig, prefix="nae", defaults=unset, unset_note="the model's (or classifier's) own setting")


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-report",
        action="store_true",
        help="encrypt/decrypt/reencrypt: no per-file line (lossless or lossy) on stdout",
    )


def add_folder_job_args(p: argparse.ArgumentParser, what: str, nonces: bool) -> None:
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
