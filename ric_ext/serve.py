"""The cloud's side: an unmodified classifier served over the Open Inference Protocol
(KServe v2 REST), and the owner's client that sends it ciphertext pixels.

The server is KServe's own (``kserve`` package: its FastAPI app, v2 endpoints, data plane
and error handlers, run by uvicorn); we add one :class:`kserve.Model` that runs the
classifier, bind it to the host asked for, and cap request bodies. Why KServe and not
MLServer or a hand-written server is in docs/decisions.md. The client is Triton's
standard one (``tritonclient[http]``), so any v2 server (Triton, MLServer, TorchServe)
could stand in for ours.

What crosses the wire: one input tensor ``images`` of shape (B, C, H, W), UINT8 (the
ciphertext's pixels as stored) or FP32 in [0, 1]; back come ``label`` (B,) INT64 and
``logits`` (B, K) FP32. No key, nonce, label or plaintext is ever sent: the client reads
only the pixels of each file.

Bad requests are answered with a 4xx and the server keeps serving: an unknown model
(404), a body over ``max_body_bytes`` (413), garbage or malformed JSON, a wrong input
count, shape, size, channel count or datatype, or values outside [0, 1] (400).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

#: request bodies larger than this are refused with 413 (64 images of 3x64x64 uint8 are 786 kB)
DEFAULT_MAX_BODY = 64 * 2**20
#: images per request at most (a request is one batch through the classifier)
DEFAULT_MAX_BATCH = 1024
INPUT_NAME = "images"


SERVE_EXTRA = 'pip install "ric_ext[serve]"'


def _missing(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is None
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def check_serve_extra(client_only: bool = False) -> None:
    """Raise MissingDependencyError, saying what to install, unless the serve extra's packages are there."""
    from .errors import MissingDependencyError

    needed = {"tritonclient": "tritonclient[http]"}
    if not client_only:
        needed = {"kserve": "kserve", **needed}
    missing = [pkg for mod, pkg in needed.items() if _missing(mod)]
    if missing:
        what = "classify --url" if client_only else "ric-ext serve"
        raise MissingDependencyError(
            f"{what} needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f"run `{SERVE_EXTRA}`"
        )


def _import_kserve():
    """kserve parses sys.argv when imported (its own flags); keep ours away from it."""
    check_serve_extra()
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        import kserve
        from kserve.model_server import ModelServer
    finally:
        sys.argv = argv
    return kserve, ModelServer


def make_model(classifier: nn.Module, name: str, *, max_batch: int = DEFAULT_MAX_BATCH, device: str = "cpu"):
    """A :class:`kserve.Model` named ``name`` that labels (B, C, H, W) images with ``classifier``."""
    kserve, _ = _import_kserve()
    from kserve.errors import InvalidInput
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    size = getattr(classifier, "input_size", None)
    channels = getattr(classifier, "channels", 3)
    classifier = classifier.eval().to(device)

    class ClassifierModel(kserve.Model):
        def __init__(self):
            super().__init__(name)
            self.ready = True

        def get_input_types(self) -> List[dict]:  # the v2 model metadata (GET /v2/models/NAME)
            hw = [size, size] if size else [-1, -1]
            return [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, channels, *hw]}]

        def get_output_types(self) -> List[dict]:
            return [
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "logits", "datatype": "FP32", "shape": [-1, -1]},
            ]

        async def predict(self, payload, headers: Optional[Dict[str, str]] = None, response_headers=None):
            if not isinstance(payload, InferRequest):
                raise InvalidInput("expected a v2 inference request")
            x = _images(payload)
            with torch.no_grad():
                logits = classifier(x.to(device)).float().cpu()
            label = logits.argmax(1)
            outs = [
                InferOutput("label", [len(label)], "INT64", label.numpy()),
                InferOutput("logits", list(logits.shape), "FP32", logits.numpy()),
            ]
            return InferResponse(
                response_id=payload.id or str(uuid.uuid4()),
                model_name=name,
                infer_outputs=outs,
                requested_outputs=payload.request_outputs,
            )

    def _images(payload) -> torch.Tensor:
        if len(payload.inputs) != 1:
            raise InvalidInput(f"expected exactly one input ({INPUT_NAME!r}), got {len(payload.inputs)}")
        inp = payload.inputs[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise InvalidInput(f"input {inp.name!r}: expected shape [B, C, H, W], got {shape}")
        b, c, h, w = shape
        if not 1 <= b <= max_batch:
            raise InvalidInput(f"input {inp.name!r}: batch {b} outside 1..{max_batch}")
        if c != channels:
            raise InvalidInput(f"input {inp.name!r}: this classifier takes {channels} channel(s), got {c}")
        if size is not None and (h, w) != (size, size):
            raise InvalidInput(f"input {inp.name!r}: this classifier takes {size}x{size} images, got {h}x{w}")
        if inp.datatype not in ("UINT8", "FP32"):
            raise InvalidInput(f"input {inp.name!r}: datatype must be UINT8 or FP32, got {inp.datatype}")
        try:
            arr = inp.as_numpy()
        except Exception as exc:  # data that does not fit its declared shape or datatype
            raise InvalidInput(
                f"input {inp.name!r}: its data does not match shape {shape}, {inp.datatype}: {exc}"
            ) from None
        if arr.shape != (b, c, h, w):
            raise InvalidInput(f"input {inp.name!r}: {arr.size} values do not fill shape {shape}")
        if inp.datatype == "UINT8":
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.uint8)).float() / 255.0
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise InvalidInput(f"input {inp.name!r}: FP32 pixels must be finite and in [0, 1]")
        return x

    return ClassifierModel()


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app parses it.

    The body is read (at most ``limit`` bytes of it) before the app runs, so a client that
    sends no Content-Length, or a false one, is held to the limit too.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                return await self._refuse(send)
            chunks.append(body)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send):
        import json

        body = json.dumps({"error": f"request body over the server's limit of {self.limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve(
    classifier: nn.Module,
    *,
    name: str = "classifier",
    host: str = "127.0.0.1",
    port: int = 8080,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
    device: str = "cpu",
) -> None:
    """Serve ``classifier`` as model ``name`` over KServe v2 REST on ``host:port`` until stopped."""
    import asyncio

    _, ModelServer = _import_kserve()
    from kserve.protocol.rest.server import RESTServer

    server = ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False)
    server.register_model(make_model(classifier, name, max_batch=max_batch, device=device))
    rest = RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension, port, workers=1)
    rest.create_application()  # kserve's v2 endpoints and error handlers on its app
    from kserve.model_server import app

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    rest.config.host = host  # kserve binds 0.0.0.0; the user chooses
    asyncio.run(rest._server.serve())


# -- the owner's client ----------------------------------------------------------------------
def _client(url: str):
    """A Triton v2 HTTP client for ``url`` (http://HOST:PORT) and the exceptions to translate."""
    from urllib.parse import urlparse

    check_serve_extra(client_only=True)
    import tritonclient.http as httpclient

    parsed = urlparse(url if "://" in url else "http://" + url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"url must be http://HOST:PORT, got {url!r}")
    return httpclient.InferenceServerClient(url=parsed.netloc, ssl=parsed.scheme == "https")


@contextlib.contextmanager
def _remote_errors(url: str) -> Iterator[None]:
    """The client's failures as RemoteError with the server's message (or why it was unreachable)."""
    from tritonclient.utils import InferenceServerException

    from .errors import RemoteError

    try:
        yield
    except InferenceServerException as exc:  # the server answered with an error
        raise RemoteError(f"the server at {url} refused the request: {exc.message()}") from None
    except OSError as exc:  # refused, unreachable, reset
        raise RemoteError(f"cannot reach a classification server at {url}: {exc}") from None


def remote_input(url: str, model: str) -> Tuple[int, Optional[int]]:
    """(channels, size) of the images the server's ``model`` takes, from its v2 metadata
    (size None when the server does not fix it)."""
    from .errors import RemoteError

    client = _client(url)
    try:
        with _remote_errors(url):
            meta = client.get_model_metadata(model)
    finally:
        client.close()
    try:
        _, c, h, w = (int(v) for v in meta["inputs"][0]["shape"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise RemoteError(f"model {model!r} at {url} does not describe a (B, C, H, W) image input") from None
    return c, (h if h > 0 and h == w else None)


def remote_classify(
    images: Iterable[Tuple[str, torch.Tensor]], url: str, model: str = "classifier", batch_size: int = 64
) -> List[Tuple[str, int]]:
    """(name, label) for each (name, (C, H, W) image in [0, 1]) from the v2 server at ``url``.

    Images whose pixels are whole 8-bit levels (ciphertexts always are) travel as UINT8,
    others as FP32; images of one shape go together in requests of up to ``batch_size``.
    """
    import tritonclient.http as httpclient

    client = _client(url)
    items = list(images)
    out: Dict[str, int] = {}
    by_shape: Dict[tuple, list] = {}
    for n, x in items:
        by_shape.setdefault(tuple(x.shape), []).append((n, x))
    try:
        for group in by_shape.values():
            for i in range(0, len(group), batch_size):
                chunk = group[i : i + batch_size]
                x = torch.stack([t for _, t in chunk])
                q = (x * 255).round()
                if torch.equal(q / 255, x):
                    arr, dtype = q.to(torch.uint8).numpy(), "UINT8"
                else:
                    arr, dtype = x.float().numpy(), "FP32"
                inp = httpclient.InferInput(INPUT_NAME, list(arr.shape), dtype)
                inp.set_data_from_numpy(arr, binary_data=True)
                with _remote_errors(url):
                    res = client.infer(
                        model, [inp], outputs=[httpclient.InferRequestedOutput("label", binary_data=True)]
                    )
                for (n, _), label in zip(chunk, res.as_numpy("label").tolist()):
                    out[n] = int(label)
    finally:
        client.close()
    return [(n, out[n]) for n, _ in items]


def model_name_for(spec: Optional[str]) -> str:
    """A v2 model name from a --classifier value: the built-in or stored name, or the file's stem
    (:func:`ric_ext.models.registry.served_name`, also what a format-4 header records)."""
    from .models.registry import served_name

    return served_name(spec)
