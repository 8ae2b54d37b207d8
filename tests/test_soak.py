"""`emopy serve` under a few thousand good and malformed requests from 8 clients: every good one answered, every bad
one refused, and the server's memory flat after a warm-up (serving/soak.py; benchmarks/soak.py soaks for longer).

The refusals that reach TensorFlow (bytes that are no image) are most of the mix: each of them grew the server by
0.4-0.9 KB while it ran signatures eagerly, so a few thousand of them grew it by more than the bound here.
"""

from __future__ import annotations

import pytest

from emopy.serving import soak
from serving_fixtures import face_png, write_test_model

WARM_UP_REQUESTS = 1500
SOAKED_REQUESTS = 6000
# Measured here: about 0.6 MB with Session signatures, as now; 4.9 MB when signatures ran eagerly.
GROWTH_BOUND_BYTES = 2 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("soaked_model")
    write_test_model(base, 1)
    process, grpc_address, rest_address = soak.start_server("--model-base-path", str(base))
    with process:
        yield process.pid, grpc_address, rest_address
        process.terminate()


@pytest.mark.scale
def test_refused_requests_leave_the_servers_memory_flat(server):
    pid, grpc_address, rest_address = server
    kinds = soak.request_kinds(face_png())
    # Most requests are refused inside the model's graph; every other kind but the PNG bomb comes once a cycle (its
    # 190 KB body moves the RSS by megabytes either way, and benchmarks/soak.py sends it).
    cycle = [request for request in soak.mix(kinds, 0.5) if request.kind != "rest_png_bomb"]
    cycle += [kinds[kind] for kind in ("rest_not_an_image", "grpc_not_an_image") for _ in range(10)]
    run = dict(pid=pid, rest_address=rest_address, grpc_address=grpc_address, sample_seconds=0.2)
    warm = soak.soak(cycle, count=WARM_UP_REQUESTS, **run)
    soaked = soak.soak(cycle, count=SOAKED_REQUESTS, **run)
    for result in (warm, soaked):
        assert result.wrong(kinds) == (0, 0), result.failures
    assert soaked.requests == SOAKED_REQUESTS
    # From the lowest RSS of the soak's first half to its end: memory that threads or the allocator give back early
    # in the soak must not hide what stays.
    first_half = [rss for seconds, _, rss in soaked.samples if seconds <= soaked.seconds / 2]
    growth = soaked.samples[-1][2] - min(first_half)
    assert growth < GROWTH_BOUND_BYTES, f"the server grew {growth / 2**20:.2f} MB over {SOAKED_REQUESTS} requests"
