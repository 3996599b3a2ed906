"""Issue 19, item 5: the classifier served over KServe v2 REST on 127.0.0.1, remote classify,
and the server's answers to bad requests (it must keep serving)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import MODELS
from PIL import Image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args):
    p = subprocess.run(
        [sys.executable, "-m", "ric_ext", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, RIC_MODELS=MODELS),
    )
    assert p.returncode == 0, f"ric_ext {args[0]} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("serve") / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ric_ext", "serve", "--classifier", "svhn", "--host", "127.0.0.1",
         "--port", str(port), "--max-body-mb", "1", "--max-batch", "64"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, RIC_MODELS=MODELS),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120  # importing kserve and torch on a busy 2-core machine
    while True:
        try:
            with urllib.request.urlopen(url + "/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            proc.kill()
            pytest.fail(f"the server did not come up:\n{log.read()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _post(url, body: bytes, ctype="application/json"):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _infer_body(shape, datatype, data, name="images"):
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}).encode()


def test_encrypt_remote_classify_decrypt(server, tmp_path, svhn_images, monkeypatch):
    x, _ = svhn_images
    (tmp_path / "plain").mkdir()
    for i in range(6):
        arr = (x[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / "plain" / f"{i}.png")
    key = tmp_path / "k.json"
    _run("keygen", "--out", key)
    _run("encrypt", "--key", key, "--input", tmp_path / "plain", "--output", tmp_path / "ct", "--no-progress")
    local = _run("classify", "--input", tmp_path / "ct")
    remote = _run("classify", "--url", server, "--remote-model", "svhn", "--input", tmp_path / "ct",
                  "--batch-size", "4")  # fmt: skip
    assert remote == local and len(local.splitlines()) == 6  # 100% agreement, same lines
    # with no --remote-model, the model is the classifier the ciphertexts' header names (svhn here)
    assert _run("classify", "--url", server, "--input", tmp_path / "ct") == local
    # ... and the cloud labels ciphertexts as the owner's classifier labels the plaintexts
    assert [ln.split("\t")[1] for ln in local.splitlines()] == [
        ln.split("\t")[1] for ln in _run("classify", "--input", tmp_path / "plain").splitlines()
    ]
    _run("decrypt", "--key", key, "--input", tmp_path / "ct", "--output", tmp_path / "back", "--no-progress")
    assert len(os.listdir(tmp_path / "back")) == 6

    # an odd-sized photo is cropped and resized to the size the server's model states (its v2 metadata)
    photo = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    (tmp_path / "photo").mkdir()
    Image.fromarray(photo).save(tmp_path / "photo" / "p.jpg")
    assert _run("classify", "--url", server, "--remote-model", "svhn", "--input", tmp_path / "photo") == _run(
        "classify", "--input", tmp_path / "photo"
    )

    # ciphertexts made for another classifier ask the server for that one, by the name their header records
    (tmp_path / "face").mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "face" / "f.png"
    )
    _run("encrypt", "--key", key, "--input", tmp_path / "face", "--output", tmp_path / "fct", "--classifier", "lfw",
         "--no-progress")  # fmt: skip
    p = subprocess.run(
        [sys.executable, "-m", "ric_ext", "classify", "--input", str(tmp_path / "fct"), "--url", server],
        capture_output=True, text=True, env=dict(os.environ, RIC_MODELS=MODELS),
    )  # fmt: skip
    assert p.returncode == 2 and "lfw" in p.stderr and "Traceback" not in p.stderr, p.stderr

    # the client's errors are messages, not tracebacks
    for args, message in (
        (("--url", server, "--remote-model", "nope"), "refused the request"),
        (("--url", "http://127.0.0.1:9"), "cannot reach a classification server"),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "ric_ext", "classify", "--input", str(tmp_path / "ct"), *args],
            capture_output=True, text=True, env=dict(os.environ, RIC_MODELS=MODELS),
        )  # fmt: skip
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, p.stderr

    # what the server receives: one UINT8 tensor of ciphertext pixels, nothing else
    import tritonclient.http as httpclient

    from ric_ext.data import load_image
    from ric_ext.serve import remote_classify

    sent = []
    real_infer = httpclient.InferenceServerClient.infer

    def spy(self, model_name, inputs, *args, **kwargs):
        sent.append((model_name, [(i.name(), i.datatype(), i.shape(), i._get_binary_data()) for i in inputs], kwargs))
        return real_infer(self, model_name, inputs, *args, **kwargs)

    monkeypatch.setattr(httpclient.InferenceServerClient, "infer", spy)
    files = sorted(os.listdir(tmp_path / "ct"))
    images = [(f, load_image(tmp_path / "ct" / f)) for f in files]
    labels = remote_classify(images, server, "svhn", batch_size=64)
    assert [str(label) for _, label in labels] == [ln.split("\t")[1] for ln in local.splitlines()]
    assert len(sent) == 1
    model_name, inputs, kwargs = sent[0]
    assert model_name == "svhn" and len(inputs) == 1 and not kwargs.get("parameters") and not kwargs.get("headers")
    name, dtype, shape, data = inputs[0]
    pixels = np.stack([np.asarray(Image.open(tmp_path / "ct" / f)).transpose(2, 0, 1) for f in files])
    assert (name, dtype, shape) == ("images", "UINT8", [6, 3, 32, 32])
    assert data == pixels.tobytes()  # exactly the ciphertext pixels: no header, nonce or key


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server):
    infer = server + "/v2/models/svhn/infer"
    good = _infer_body([1, 3, 32, 32], "UINT8", [0] * 3072)
    cases = {
        "unknown model": (server + "/v2/models/nope/infer", good, 404, "nope"),
        "wrong rank": (infer, _infer_body([1, 3, 32], "UINT8", [0] * 96), 400, "shape [B, C, H, W]"),
        "wrong size": (infer, _infer_body([1, 3, 16, 64], "UINT8", [0] * 3072), 400, "32x32"),
        "wrong channels": (infer, _infer_body([1, 1, 32, 32], "UINT8", [0] * 1024), 400, "3 channel"),
        "wrong dtype": (infer, _infer_body([1, 3, 32, 32], "INT64", [0] * 3072), 400, "UINT8 or FP32"),
        "out of range": (infer, _infer_body([1, 3, 32, 32], "FP32", [2.0] * 3072), 400, "[0, 1]"),
        "short data": (infer, _infer_body([1, 3, 32, 32], "UINT8", [0] * 100), 400, "does not match"),
        "batch over limit": (infer, _infer_body([65, 3, 32, 32], "UINT8", [0] * 65 * 3072), 400, "outside 1..64"),
        "no inputs": (infer, b'{"inputs": []}', 400, "exactly one input"),
        "garbage bytes": (infer, b"\x00\xffnot json{{", 422, "JSON"),
    }
    for what, (url, body, status, message) in cases.items():
        code, text = _post(url, body)
        assert code == status, f"{what}: {code} {text[:200]!r}"
        assert message in text.decode(errors="replace"), f"{what}: {text[:200]!r}"
        assert _post(infer, good)[0] == 200, f"the server stopped serving after: {what}"

    # bodies over the 1 MiB limit: a declared Content-Length is refused before the body is read,
    # a chunked body (no length) once the limit is passed
    host, port = server.removeprefix("http://").split(":")
    head = b"POST /v2/models/svhn/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    chunk = b" " * (2**20 + 4096)
    for request in (
        head + b"Content-Length: 104857600\r\n\r\n{",
        head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=30) as s:
            s.sendall(request)
            reply = b""
            while b"}" not in reply:  # headers, then the JSON body
                part = s.recv(4096)
                if not part:
                    break
                reply += part
        assert reply.startswith(b"HTTP/1.1 413") and b"limit" in reply, reply[:200]
        assert _post(infer, good)[0] == 200
