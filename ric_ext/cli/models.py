"""`models` (the user's model store) and `import-authors`."""

from __future__ import annotations

import argparse
import json


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models import store
    from ..models.store_add import add

    if args.action == "add":
        e = add(args.file, args.name)
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


def _cmd_import_authors(args: argparse.Namespace) -> int:
    from ..models.authors import load_authors_checkpoint
    from ..models.registry import save_ric

    model = load_authors_checkpoint(args.input, lam=args.lam)
    save_ric(args.out, model, extra={"source": "authors' checkpoint (csjunjun/RIC layout)"}, overwrite=False)
    print(f"RIC{model.config()} written to {args.out}")
    return 0


def add_models(sub) -> None:
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


def add_import_authors(sub) -> None:
    ia = sub.add_parser(
        "import-authors",
        help="convert a checkpoint of the authors' code (Net.m1/m2/m3 = Prep/Hiding/Reveal) into ric_ext RIC weights",
    )
    ia.add_argument("--input", required=True, help="their checkpoint, e.g. Weights/Svhn.pth.tar")
    ia.add_argument("--out", required=True, help="RIC weights file to create (never overwritten)")
    ia.add_argument("--lam", type=float, default=0.8, help="their lambda_net (default: %(default)s)")
    ia.set_defaults(func=_cmd_import_authors)
