"""`classify` and `serve`: the cloud's side, locally or over KServe v2."""

from __future__ import annotations

import argparse
from typing import Optional

from .common import add_classifier_args, classifier_of, device_of, size_of


def _cmd_classify(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_image
    from ..folders import image_files

    files = image_files(args.input)
    header = _ciphertext_header(files[0])
    if args.url:  # the cloud's classifier: only the pixels travel (ric_ext.serve)
        from ..serve import remote_classify, remote_input

        remote = args.remote_model or _header_model_name(header, args.models) or "svhn"
        channels, size = remote_input(args.url, remote)  # what the server's model takes
        size = args.size if args.size is not None else size
        images = ((f, load_image(f, channels, size)) for f in files)
        for f, label in remote_classify(images, args.url, remote, args.batch_size):
            print(f"{f}\t{label}")
        return 0
    if args.classifier is None and header is not None:  # the classifier the ciphertexts were made for
        from ..models.registry import find_classifier

        args.classifier = find_classifier(str(header.get("classifier")), args.models)
    clf = classifier_of(args)
    dev = device_of(args.device)
    size = size_of(args, clf)
    for f in files:
        with torch.no_grad():
            label = int(clf(load_image(f, getattr(clf, "channels", 3), size).unsqueeze(0).to(dev)).argmax(1))
        print(f"{f}\t{label}")
    return 0


def _ciphertext_header(path: str) -> Optional[dict]:
    """The (unauthenticated) ric_ext header of ``path``, or None when it is a plain image."""
    from ..errors import CiphertextFormatError
    from ..fileformat import peek_header

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
    from ..models.registry import find_classifier

    try:
        return find_classifier(str(header.get("classifier")), models)
    except FileNotFoundError:
        return None


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..serve import check_serve_extra, model_name_for, serve

    check_serve_extra()  # before loading anything: a missing extra is a one-line message
    clf = classifier_of(args)
    name = args.name or model_name_for(args.classifier)
    print(f"serving classifier {name!r} (KServe v2 REST) on http://{args.host}:{args.port}", flush=True)
    serve(
        clf,
        name=name,
        host=args.host,
        port=args.port,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_batch=args.max_batch,
        device=str(device_of(args.device)),
    )
    return 0


def add(sub) -> None:
    cl = sub.add_parser("classify", help="labels of the unmodified classifier for images or ciphertexts")
    cl.add_argument("--input", required=True, help="an image file or a folder of images")
    cl.add_argument(
        "--size",
        type=int,
        default=None,
        help="centre-crop and resize to SIZE x SIZE first (default: the classifier's input size; with --url, "
        "the size the server's model states)",
    )
    add_classifier_args(cl)
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
    add_classifier_args(sv)
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
