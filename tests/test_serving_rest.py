"""The REST front end's doors: malformed base64 is a 400 that says so, and slow clients cost a bounded number of
threads for a bounded time (serving/server/rest.py), over real sockets on loopback."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emopy.serving.local_server import ModelServer
from emopy.serving.server.rest import RestServer
from serving_fixtures import LABELS, face_png, write_test_model

MODEL = "emotion"
TIMEOUT = 2.0  # the test servers' connection timeout, seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base: Path = tmp_path_factory.mktemp("model")
    write_test_model(base, 1)
    with ModelServer(base, MODEL, port=0, rest_port=0) as server:
        yield server


def rest_call(port: int, path: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def rest_server(server: ModelServer, **limits):
    """A second REST endpoint on the server's RequestHandler, with the limits given; yields its port."""
    rest = RestServer(("127.0.0.1", 0), server.handler, 1 << 20, **limits)
    thread = threading.Thread(target=rest.serve_forever, daemon=True)
    thread.start()
    try:
        yield rest.server_address[1]
    finally:
        rest.shutdown()
        rest.server_close()
        thread.join(timeout=10)


def stall(port: int, *, in_body: bool) -> socket.socket:
    """A client that sends part of a request (its headers, or all of them and part of the body) and waits."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    request = f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
    connection.sendall((request + "\r\n{\"instances\"" if in_body else request).encode())
    return connection


def dropped(connection: socket.socket) -> bool:
    """Whether the server has closed the connection (waiting up to the socket's timeout for it to)."""
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def status_ok(port: int, timeout: float = 30) -> bool:
    return rest_call(port, f"/v1/models/{MODEL}", timeout=timeout)[0] == 200


# --- Malformed base64 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, words", [
    ("aGVsbG8", ["image_bytes", "not valid base64", "padding"]),
    ("aGVs!bG8=", ["image_bytes", "not valid base64"]),
    ("aGVsbG8é", ["image_bytes", "not valid base64", "ASCII"]),
    (12, ["image_bytes", "must be a string", "int"]),
])
def test_malformed_base64_gets_400_saying_so_and_the_server_keeps_serving(server, value, words):
    port = server.ports.rest
    good = {"b64": base64.b64encode(face_png()).decode()}
    for path, body in [(f"/v1/models/{MODEL}:predict", {"instances": [good, {"b64": value}]}),
                       (f"/v1/models/{MODEL}:predict", {"inputs": {"image_bytes": [{"b64": value}]}}),
                       (f"/v1/models/{MODEL}:classify", {"signature_name": "classify",
                                                         "examples": [{"image_bytes": {"b64": value}}]})]:
        status, answer = rest_call(port, path, body)
        assert status == 400, (path, body, answer)
        for word in words:
            assert word in answer["error"], answer
    status, answer = rest_call(port, f"/v1/models/{MODEL}:predict", {"instances": [good]})
    assert status == 200 and answer["predictions"][0]["classes"] in LABELS
    # Line breaks, as base64.encodebytes writes them, are not malformed.
    status, _ = rest_call(port, f"/v1/models/{MODEL}:predict",
                          {"instances": [{"b64": base64.encodebytes(face_png()).decode()}]})
    assert status == 200


# --- Slow clients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_body", [False, True], ids=["headers", "body"])
def test_a_stalled_client_is_dropped_after_the_timeout_while_others_are_served(server, in_body):
    with rest_server(server, connection_timeout=TIMEOUT, max_connections=4) as port:
        started = time.monotonic()
        staller = stall(port, in_body=in_body)
        with staller:
            assert status_ok(port)  # served while the staller holds its connection
            assert dropped(staller)
            waited = time.monotonic() - started
        assert TIMEOUT * 0.9 <= waited < TIMEOUT + 15, waited
        assert status_ok(port)


def test_at_most_max_connections_are_handled_at_once_and_the_timeout_frees_them(server):
    with rest_server(server, connection_timeout=TIMEOUT, max_connections=2) as port:
        stallers = [stall(port, in_body=False) for _ in range(2)]
        try:
            # Both handler threads are held: a third client waits in the listen backlog...
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                status_ok(port, timeout=0.5)
            # ...until the timeout drops a staller; then it is served.
            assert status_ok(port)
            assert all(dropped(staller) for staller in stallers)
        finally:
            for staller in stallers:
                staller.close()


def test_answers_on_a_kept_alive_connection_are_not_held_back_by_nagle(server):
    # An answer is two writes, its headers and its body. With Nagle's algorithm on, the body waits for the client's
    # delayed ACK of the headers (about 40 ms on Linux), so every request on a kept-alive connection took 40 ms more.
    import http.client
    import statistics

    connection = http.client.HTTPConnection("127.0.0.1", server.ports.rest, timeout=30)
    took = []
    for _ in range(30):
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{MODEL}:predict", b"{not json", {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        took.append(time.perf_counter() - started)
        assert response.status == 400
    connection.close()
    assert statistics.median(took) < 0.02, f"median {statistics.median(took) * 1000:.1f} ms a refused request"
