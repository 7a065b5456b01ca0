"""Error handling: bad JSON, validation, routing, body limits, media types, the
error body shape, and hostile inputs that must never take the server down."""

import json
import socket
import time

import pytest

from conftest import (
    ServerProcess, assert_error, check_alive, enc, hardware_body, model_body,
    read_response, run_body, uid,
)

MODELS = "/api/v1/models"
HW = "/api/v1/hardware"
RUNS = "/api/v1/benchmarks"


@pytest.fixture(scope="module")
def refs(server):
    c = server.client()
    model = c.create(MODELS, model_body(f"err-org/m-{uid()}"))["id"]
    hw = c.create(HW, hardware_body())["id"]
    run = c.create(RUNS, run_body(model, hw))["id"]
    c.close()
    return {"model": model, "hw": hw, "run": run}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server started with --max-body 4096."""
    srv = ServerProcess(tmp_path_factory.mktemp("small") / "modelcat.db",
                        extra_args=["--max-body", "4096"]).start()
    try:
        yield srv
    finally:
        if srv.alive():
            srv.stop()
        else:
            srv.kill()
            pytest.fail(f"small server died (rc={srv.proc.returncode})\n{srv.log_tail()}")


# ---------------------------------------------------------------------------
# Bad JSON
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b'{"id": ', b"", b"{", b"}", b'{"id": "a/b",}', b"{'id': 'a/b'}", b'{"id": "a/b"} trailing',
    b'{"id": "a/b" /* comment */}', b'{"name": "unterminated}', b"nul",
], ids=lambda raw: repr(raw)[:30])
def test_malformed_json_is_400(client, raw):
    assert_error(client.post(MODELS, body=raw), 400, "bad_json")


@pytest.mark.parametrize("raw", [b"[]", b'[{"id": "a/b", "name": "x", "parameters_b": 1}]',
                                 b'"a string"', b"42", b"null", b"true"])
def test_non_object_json_is_400(client, raw):
    assert_error(client.post(MODELS, body=raw), 400, "bad_json")


def test_bad_json_on_every_write_route(client, refs):
    assert_error(client.post(HW, body=b"[1,2"), 400, "bad_json")
    assert_error(client.post(RUNS, body=b"[]"), 400, "bad_json")
    assert_error(client.put(f"{MODELS}/{enc(refs['model'])}", body=b"{,}"), 400, "bad_json")
    assert_error(client.patch(f"{MODELS}/{enc(refs['model'])}", body=b"[]"), 400, "bad_json")
    assert_error(client.put(f"{HW}/{enc(refs['hw'])}", body=b"nope"), 400, "bad_json")


# ---------------------------------------------------------------------------
# Validation (422 naming the field)
# ---------------------------------------------------------------------------

DROP = object()

MODEL_CASES = [
    ("id", DROP), ("name", DROP), ("parameters_b", DROP),
    ("id", 5), ("id", "noslash"), ("id", "a/b/c"), ("id", "org/-bad"), ("id", "/name"),
    ("id", "org/"), ("id", "or g/name"), ("id", "a" * 100 + "/" + "b" * 30),
    ("name", ""), ("name", "x" * 201), ("name", 5), ("name", None),
    ("parameters_b", "7"), ("parameters_b", True), ("parameters_b", 0), ("parameters_b", -1),
    ("parameters_b", 100000.5), ("parameters_b", None),
    ("family", 3), ("family", "f" * 65), ("architecture", "a" * 65),
    ("context_length", 1.5), ("context_length", "8k"), ("context_length", 0),
    ("context_length", 100000001),
    ("quantization", "BF16"), ("quantization", "q" * 33), ("quantization", "fp 8"), ("quantization", ""),
    ("license", "l" * 65), ("source_uri", "ftp://example.com/x"), ("source_uri", "example.com"),
    ("source_uri", "https://e.com/" + "x" * 2040), ("description", "d" * 8193), ("description", []),
    ("tags", "chat"), ("tags", [1]), ("tags", ["Bad Tag"]), ("tags", ["-x"]), ("tags", [""]),
    ("tags", ["t" * 65]), ("tags", [f"t{i}" for i in range(33)]), ("tags", {"a": 1}),
]


@pytest.mark.parametrize("field,value", MODEL_CASES,
                         ids=[f"{f}={repr(v)[:20]}" for f, v in MODEL_CASES])
def test_model_validation(client, field, value):
    body = model_body()
    if value is DROP:
        del body[field]
    else:
        body[field] = value
    assert_error(client.post(MODELS, body), 422, "validation_failed", field)
    if field != "id":
        assert client.get(f"{MODELS}/{enc(body['id'])}").status == 404, "rejected model was stored"


def test_model_boundaries_are_accepted(client):
    ok = [
        model_body(f"a/{'b' * 126}"),  # id of exactly 128 characters
        model_body(name="n" * 200, parameters_b=100000, context_length=100000000,
                   quantization="q" * 32, tags=[f"t{i}" for i in range(32)]),
        model_body(parameters_b=0.001, context_length=1, description="d" * 8192,
                   source_uri="http://example.com", tags=["t" * 64]),
    ]
    for body in ok:
        r = client.post(MODELS, body)
        assert r.status == 201, (r, {k: str(v)[:40] for k, v in body.items()})


HW_CASES = [
    ("id", DROP), ("gpu", DROP), ("memory_gb", DROP),
    ("id", "Upper"), ("id", "-x"), ("id", "a" * 129), ("id", "a/b"), ("id", 7),
    ("gpu", ""), ("gpu", "g" * 65), ("gpu", 1),
    ("memory_gb", 0), ("memory_gb", 10000.5), ("memory_gb", "80"), ("memory_gb", None),
    ("provider", "p" * 65), ("instance_type", "i" * 65),
    ("gpus_per_instance", 0), ("gpus_per_instance", 65), ("gpus_per_instance", 1.5),
    ("on_demand_usd_per_hour", -0.01), ("spot_usd_per_hour", "cheap"),
    ("price_source", "s" * 2049), ("price_date", "2025-1-5"), ("price_date", "yesterday"),
    ("price_date", 20250105),
]


@pytest.mark.parametrize("field,value", HW_CASES, ids=[f"{f}={repr(v)[:20]}" for f, v in HW_CASES])
def test_hardware_validation(client, field, value):
    body = hardware_body()
    if value is DROP:
        del body[field]
    else:
        body[field] = value
    assert_error(client.post(HW, body), 422, "validation_failed", field)


RUN_REQUIRED = ["model", "engine", "hardware", "dataset", "duration", "completed",
                "total_input_tokens", "total_output_tokens", "request_throughput",
                "output_throughput", "total_token_throughput"]

RUN_CASES = [(f, DROP) for f in RUN_REQUIRED] + [
    ("engine", "VLLM"), ("engine", "e" * 33), ("engine", 1), ("engine_version", "v" * 65),
    ("engine_args", "a" * 4097), ("gpu_count", 0), ("gpu_count", 1025), ("gpu_count", 1.5),
    ("tensor_parallel", 0), ("tensor_parallel", 1025), ("dataset", "d" * 257), ("dataset", None),
    ("mean_input_tokens", -0.5), ("mean_output_tokens", "x"), ("request_rate", 0),
    ("request_rate", -1), ("max_concurrency", 0), ("duration", 0), ("duration", -5),
    ("completed", -1), ("completed", 1.5), ("failed", -1), ("total_input_tokens", -1),
    ("total_output_tokens", "many"), ("request_throughput", -0.1), ("output_throughput", None),
    ("total_token_throughput", -1), ("request_goodput", -1), ("p99_ttft_ms", -1),
    ("mean_itl_ms", "fast"), ("std_e2el_ms", -0.001), ("tool", "t" * 65), ("tool_version", 3),
    ("seed", -1), ("seed", 2**63), ("seed", 1.5), ("command", "c" * 8193),
    ("sweep_id", "a b"), ("sweep_id", "s" * 65), ("sweep_id", ""), ("samples", "x"),
    ("samples", {"scheduled_ns": 0}),
]


@pytest.mark.parametrize("field,value", RUN_CASES, ids=[f"{f}={repr(v)[:20]}" for f, v in RUN_CASES])
def test_run_validation(client, refs, field, value):
    body = run_body(refs["model"], refs["hw"])
    if value is DROP:
        del body[field]
    else:
        body[field] = value
    assert_error(client.post(RUNS, body), 422, "validation_failed", field)


GOOD_SAMPLE = {"scheduled_ns": 0, "sent_ns": 10, "first_token_ns": 20, "last_token_ns": 30,
               "input_tokens": 5, "output_tokens": 6, "error": None}


@pytest.mark.parametrize("change", [
    {"scheduled_ns": -1}, {"sent_ns": "soon"}, {"input_tokens": -3}, {"output_tokens": 1.5},
    {"error": 5}, {"unknown_member": 1}, {"first_token_ns": -7},
], ids=lambda c: next(iter(c)))
def test_bad_sample_is_422(client, refs, change):
    samples = [dict(GOOD_SAMPLE), dict(GOOD_SAMPLE, **change)]
    r = client.post(RUNS, dict(run_body(refs["model"], refs["hw"]), samples=samples))
    err = assert_error(r, 422, "validation_failed")
    assert err.get("field", "").startswith("samples"), err


def test_unknown_fields_are_refused_first_one_named(client, refs):
    body = model_body()
    body["zzz_unknown"] = 1
    body["aaa_unknown"] = 2
    assert_error(client.post(MODELS, body), 422, "validation_failed", "zzz_unknown")
    assert_error(client.post(HW, dict(hardware_body(), gpu_model="x")), 422, "validation_failed", "gpu_model")
    assert_error(client.post(RUNS, dict(run_body(refs["model"], refs["hw"]), p999_ttft_ms=1)),
                 422, "validation_failed", "p999_ttft_ms")


# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("GET", "/api/v1/nothing"), ("GET", "/api/v2/models"), ("GET", "/api/v1"),
    ("POST", "/api/v1/unknown"), ("GET", "/api/v1/models/a%2Fb/unknown"), ("GET", "/healthz/x"),
    ("DELETE", "/api/v1/nothing/x"),
])
def test_unknown_route_is_404(client, method, path):
    r = client.post(path, {}) if method == "POST" else client.request(method, path)
    assert_error(r, 404, "not_found")


def _allow(resp):
    return {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}


def test_wrong_method_is_405_with_allow(client, refs):
    cases = [
        ("DELETE", MODELS, {"GET", "POST"}),
        ("PUT", MODELS, {"GET", "POST"}),
        ("POST", f"{MODELS}/{enc(refs['model'])}", {"GET", "PUT", "PATCH", "DELETE"}),
        ("GET", f"{MODELS}/{enc(refs['model'])}/benchmarks", None),
        ("POST", f"{MODELS}/{enc(refs['model'])}/benchmarks", {"GET"}),
        ("PATCH", f"{HW}/{enc(refs['hw'])}", {"GET", "PUT", "DELETE"}),
        ("DELETE", HW, {"GET", "POST"}),
        ("PUT", f"{RUNS}/{refs['run']}", {"GET", "DELETE"}),
        ("PATCH", f"{RUNS}/{refs['run']}", {"GET", "DELETE"}),
        ("POST", f"{RUNS}/{refs['run']}/samples", {"GET"}),
        ("DELETE", RUNS, {"GET", "POST"}),
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/readyz", {"GET"}),
        ("PUT", "/openapi.json", {"GET"}),
    ]
    for method, path, allowed in cases:
        body = {} if method in ("POST", "PUT", "PATCH") else None
        r = client.request(method, path, json_body=body) if body is not None else client.request(method, path)
        if allowed is None:
            assert r.status == 200, r
            continue
        assert_error(r, 405, "method_not_allowed")
        got = _allow(r)
        assert allowed <= got, f"{method} {path}: Allow {got} lacks {allowed - got}"
        assert method not in got, f"{method} {path}: Allow lists the refused method: {got}"
    # Nothing was changed by the refused requests.
    assert client.get(f"{RUNS}/{refs['run']}").status == 200
    assert client.get(f"{MODELS}/{enc(refs['model'])}").status == 200


# ---------------------------------------------------------------------------
# Body size and media type
# ---------------------------------------------------------------------------


def test_body_over_max_body_is_413_before_it_is_read(small_server):
    sock = small_server.raw_socket(timeout=5)
    try:
        head = (f"POST {MODELS} HTTP/1.1\r\nHost: 127.0.0.1:{small_server.port}\r\n"
                "Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n").encode()
        started = time.monotonic()
        sock.sendall(head + b'{"id": "a/b", ')
        resp = read_response(sock, timeout=5)
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert resp is not None, "connection closed without a 413"
    status, headers, body = resp
    assert status == 413, resp
    assert elapsed < 3, f"413 took {elapsed:.1f}s: the server waited for the body"
    err = json.loads(body)["error"]
    assert err["code"] == "payload_too_large", body
    check_alive(small_server)


def test_full_body_over_max_body_is_413(small_server):
    c = small_server.client()
    try:
        big = model_body(description="x" * 5000)
        assert_error(c.post(MODELS, big), 413, "payload_too_large")
        c.close()
        assert c.get(f"{MODELS}/{enc(big['id'])}").status == 404
        # A body under the limit still works, on the same server.
        small = model_body(description="y" * 3000)
        assert len(json.dumps(small)) < 4096
        assert c.post(MODELS, small).status == 201
        created = model_body()
        c.post(MODELS, created)
        assert_error(c.put(f"{MODELS}/{enc(created['id'])}", dict(created, description="z" * 5000)),
                     413, "payload_too_large")
    finally:
        c.close()
    check_alive(small_server)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/xml", "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(client, refs, ctype):
    body = model_body()
    r = client.post(MODELS, body, content_type=ctype)
    assert_error(r, 415, "unsupported_media_type")
    assert client.get(f"{MODELS}/{enc(body['id'])}").status == 404
    assert_error(client.put(f"{MODELS}/{enc(refs['model'])}", model_body(refs["model"]), content_type=ctype),
                 415, "unsupported_media_type")
    assert_error(client.post(RUNS, run_body(refs["model"], refs["hw"]), content_type=ctype),
                 415, "unsupported_media_type")


def test_json_content_type_with_parameters_is_accepted(client):
    r = client.post(MODELS, model_body(), content_type="application/json; charset=utf-8")
    assert r.status == 201, r
    r = client.patch(f"{MODELS}/{enc(r.body['id'])}", {"name": "x"},
                     content_type="application/merge-patch+json; charset=utf-8")
    assert r.status == 200, r


# ---------------------------------------------------------------------------
# The error shape, once per documented code
# ---------------------------------------------------------------------------


def test_every_error_has_the_documented_shape(client, refs, small_server):
    mp = f"{MODELS}/{enc(refs['model'])}"
    cases = [
        (client.post(MODELS, body=b"{"), 400, "bad_json"),
        (client.get(MODELS, {"limit": "0"}), 400, "bad_parameter"),
        (client.get(MODELS, {"cursor": "x"}), 400, "bad_cursor"),
        (client.get("/nowhere"), 404, "not_found"),
        (client.get(f"{MODELS}/{enc('no/such-' + uid())}"), 404, "not_found"),
        (client.request("DELETE", MODELS), 405, "method_not_allowed"),
        (client.post(MODELS, model_body(refs["model"])), 409, "conflict"),
        (client.delete(mp), 409, "conflict"),
        (client.patch(mp, {"name": "x"}, headers={"If-Match": '"nope"'}), 412, "precondition_failed"),
        (client.post(MODELS, model_body(), content_type="text/plain"), 415, "unsupported_media_type"),
        (client.post(MODELS, dict(model_body(), parameters_b=-1)), 422, "validation_failed"),
    ]
    small = small_server.client()
    try:
        cases.append((small.post(MODELS, model_body(description="x" * 8000)), 413, "payload_too_large"))
    finally:
        small.close()
    for resp, status, code in cases:
        assert_error(resp, status, code)
    # field appears when one field is at fault
    assert assert_error(client.get(MODELS, {"limit": "0"}), 400).get("field") == "limit"
    assert assert_error(client.post(MODELS, dict(model_body(), name=3)), 422).get("field") == "name"


# ---------------------------------------------------------------------------
# Hostile inputs: the server answers 4xx (never 5xx) and stays up
# ---------------------------------------------------------------------------


def _valid_prefix():
    return '{"id": "hostile/m-%s", "parameters_b": 7, ' % uid()


HOSTILE_JSON = [
    ("huge_float", b'{"id": "hostile/float", "name": "x", "parameters_b": 1e400}', {400, 422}),
    ("huge_int", (_valid_prefix() + '"name": "x", "context_length": 99999999999999999999999999999}').encode(),
     {400, 422}),
    ("huge_exponent", (_valid_prefix() + '"name": "x", "context_length": 1e999999999}').encode(), {400, 422}),
    ("negative_zero_params", b'{"id": "h/z", "name": "x", "parameters_b": -0.0}', {422}),
    ("nan_token", (_valid_prefix() + '"name": "x", "context_length": NaN}').encode(), {400}),
    ("infinity_token", (_valid_prefix() + '"name": "x", "context_length": Infinity}').encode(), {400}),
    ("neg_infinity_token", (_valid_prefix() + '"name": "x", "context_length": -Infinity}').encode(), {400}),
    ("nested_arrays_10000", b"[" * 10000 + b"]" * 10000, {400}),
    ("nested_objects_10000", b'{"a":' * 10000 + b"1" + b"}" * 10000, {400, 422}),
    ("nested_in_member", (_valid_prefix() + '"name": ').encode() + b"[" * 10000 + b"]" * 10000 + b"}",
     {400, 422}),
    ("unterminated_nesting", b"[" * 100000, {400}),
    ("invalid_utf8", (_valid_prefix() + '"name": "').encode() + b"\xff\xfe\xc0\xaf" + b'"}', {400, 422}),
    ("overlong_utf8", (_valid_prefix() + '"name": "').encode() + b"\xc0\x80" + b'"}', {400, 422}),
    ("raw_nul_in_string", (_valid_prefix() + '"name": "a').encode() + b"\x00" + b'b"}', {400}),
    ("raw_nul_outside", b"{\x00}", {400}),
    ("long_id", json.dumps({"id": "a" * 100 + "/" + "b" * 100000, "name": "x",
                            "parameters_b": 1}).encode(), {422}),
    ("many_members", ("{" + ",".join(f'"k{i}": {i}' for i in range(20000)) + "}").encode(), {400, 413, 422}),
    ("long_string", json.dumps({"id": "a/b", "name": "x" * 900000, "parameters_b": 1}).encode(), {400, 413, 422}),
]


@pytest.mark.parametrize("name,raw,allowed", HOSTILE_JSON, ids=[h[0] for h in HOSTILE_JSON])
def test_hostile_json_bodies(server, name, raw, allowed):
    c = server.client(timeout=10)
    try:
        r = c.post(MODELS, body=raw)
    finally:
        c.close()
    assert r.status in allowed, f"{name}: {r!r}"
    assert_error(r, r.status)
    check_alive(server)


def test_escaped_nul_round_trips_or_is_refused(client, server):
    for name in ("a\u0000b", "\u0000", "tab\tand\u001fcontrol"):
        body = model_body(name=name)
        r = client.post(MODELS, body)
        if r.status == 201:
            g = client.get(f"{MODELS}/{enc(body['id'])}")
            assert g.status == 200 and g.body["name"] == name, f"name {name!r} came back as {g!r}"
        else:
            assert_error(r, 422, "validation_failed", "name")
    check_alive(server)


def test_unicode_round_trips(client):
    name = "Modèle 模型 🚀 \u00e9\u0301 \"quoted\" \\ back"
    body = model_body(name=name, description="ÄÖÜ " * 100)
    r = client.post(MODELS, body)
    assert r.status == 201, r
    assert client.get(f"{MODELS}/{enc(body['id'])}").body["name"] == name


def test_lone_surrogate_escape_does_not_crash(client, server):
    raw = json.dumps(model_body(name="x")).replace('"name": "x"', '"name": "\\ud800"').encode()
    r = client.post(MODELS, body=raw)
    assert r.status in (201, 400, 422), r
    if r.status != 201:
        assert_error(r, r.status)
    check_alive(server)


@pytest.mark.parametrize("path", [
    "/api/v1/models/..%2F..%2Fetc%2Fpasswd", "/api/v1/models/..%2F..%2F..%2Fetc%2Fpasswd/benchmarks",
    "/api/v1/hardware/..%2F..%2Fetc%2Fpasswd", "/api/v1/benchmarks/..%2F..%2Fetc%2Fpasswd",
    "/api/v1/models/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/api/v1/models/%zz", "/api/v1/models/abc%2",
    "/api/v1/models/%", "/api/v1/models/%C0%AF", "/api/v1/models/a%00b", "/api/v1/models/%FF%FE",
    "/api/v1/hardware/%", "/api/v1/benchmarks/%G0",
])
def test_hostile_paths(client, server, path):
    r = client.get(path)
    assert r.status in (400, 404), r
    assert_error(r, r.status)
    assert b"root:" not in r.raw
    check_alive(server)


@pytest.mark.parametrize("query", [
    "q=%zz", "q=%", "q=%00", "limit=%FF", "min_params=1e999", "min_params=NaN", "max_params=-inf",
    "min_context=99999999999999999999999", "limit=1&limit=2", "tag=" + "&tag=".join(["x"] * 500),
    "q=" + "a" * 20000, "cursor=" + "A" * 5000, "sort=" + "-" * 1000,
], ids=lambda q: q[:24])
def test_hostile_query_strings(client, server, query):
    r = client.request("GET", f"{MODELS}?{query}")
    assert r.status in (200, 400, 414, 431), r
    if r.status != 200:
        assert_error(r, r.status)
    check_alive(server)


RAW_REQUESTS = [
    ("garbage_line", b"GARBAGE\r\n\r\n"),
    ("binary", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n"),
    ("bad_version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("huge_header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n"),
    ("many_headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"),
    ("long_path", b"GET /api/v1/models/" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("negative_length", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: -5\r\n\r\n{}"),
    ("non_numeric_length", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: abc\r\n\r\n{}"),
    ("overflow_length", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 99999999999999999999999999\r\n\r\n{}"),
    ("conflicting_lengths", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"),
    ("bad_chunk", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    ("huge_chunk", b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n"),
    ("nul_in_path", b"GET /api/v1/models/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("dotdot_path", b"GET /api/v1/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("long_method", b"X" * 10000 + b" / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("lf_only", b"GET /healthz HTTP/1.1\nHost: x\n\n"),
]


def _read_until_close(sock, timeout):
    """Bytes the server sends until it closes, or until one complete response."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, OSError) as exc:
            if isinstance(exc, socket.timeout):
                break
            return data, True
        if not chunk:
            return data, True
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and data.startswith(b"HTTP/"):
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and len(body) >= int(value.strip() or 0):
                    return data, False
    return data, False


@pytest.fixture(scope="module")
def short_idle_server(tmp_path_factory):
    """A server whose idle timeout is 2 s. libmicrohttpd 0.9.75 sometimes
    takes a request line that starts with a NUL byte for an empty line and
    keeps waiting for a request; the idle timeout is what closes such a
    connection, so the assertion below is "answered or closed within 5 s"."""
    from conftest import ServerProcess
    srv = ServerProcess(tmp_path_factory.mktemp("raw") / "raw.db",
                        extra_args=("--idle-timeout", "2")).start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("name,data", RAW_REQUESTS, ids=[r[0] for r in RAW_REQUESTS])
def test_hostile_raw_requests(short_idle_server, name, data):
    server = short_idle_server
    sock = server.raw_socket(timeout=5)
    try:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused by closing early: fine
        answer, closed = _read_until_close(sock, 5)
    finally:
        sock.close()
    assert answer or closed, f"{name}: no answer and no close within 5s"
    if answer.startswith(b"HTTP/"):
        status = answer.split(b" ", 2)[1]
        assert status != b"500", f"{name}: {answer[:300]!r}"
    assert b"root:" not in answer
    check_alive(server)
