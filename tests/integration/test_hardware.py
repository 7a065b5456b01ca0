"""Hardware: CRUD, ETags, filters, sorts, and delete while benchmark runs reference it."""

import urllib.parse

import pytest

from conftest import (
    RFC3339_MS, assert_error, assert_fields_equal, enc, hardware_body, ids_of,
    is_strong_etag, model_body, run_body, uid,
)

HW = "/api/v1/hardware"


def hpath(hw_id):
    return f"{HW}/{enc(hw_id)}"


def test_create_get_put_delete(client):
    sent = hardware_body(f"aws-p5.48xlarge-{uid()}")
    r = client.post(HW, sent)
    assert r.status == 201, r
    assert_fields_equal(sent, r.body)
    assert RFC3339_MS.match(r.body["created_at"]) and RFC3339_MS.match(r.body["updated_at"]), r.body
    assert is_strong_etag(r.headers.get("etag")), r.headers
    location = urllib.parse.urlsplit(r.headers.get("location", "")).path
    assert location == hpath(sent["id"]), r.headers

    g = client.get(location)
    assert g.status == 200 and g.body == r.body, g
    assert g.headers.get("etag") == r.headers["etag"]

    # PUT is a full replacement: omitted members go back to their defaults.
    p = client.put(location, {"id": sent["id"], "gpu": "A100 40GB", "memory_gb": 40})
    assert p.status == 200, p
    assert p.body["gpu"] == "A100 40GB" and p.body["memory_gb"] == 40
    assert p.body["gpus_per_instance"] == 1
    for key in ("provider", "instance_type", "on_demand_usd_per_hour", "spot_usd_per_hour",
                "price_source", "price_date"):
        assert p.body.get(key) is None, (key, p.body)
    assert p.body["created_at"] == r.body["created_at"]
    assert client.get(location).body == p.body

    # Everything GET returned can be PUT back.
    back = client.put(location, dict(p.body, provider="gcp"))
    assert back.status == 200 and back.body["provider"] == "gcp", back

    d = client.delete(location)
    assert d.status == 204 and d.raw == b"", d
    assert_error(client.get(location), 404, "not_found")
    assert_error(client.delete(location), 404, "not_found")


def test_minimal_hardware_defaults(client):
    r = client.post(HW, {"id": f"min-{uid()}", "gpu": "L4", "memory_gb": 24})
    assert r.status == 201, r
    assert r.body["gpus_per_instance"] == 1
    assert r.body.get("on_demand_usd_per_hour") is None
    assert r.body.get("spot_usd_per_hour") is None


def test_duplicate_id_is_409(client):
    body = hardware_body()
    client.create(HW, body)
    assert_error(client.post(HW, dict(body, gpu="other")), 409, "conflict")
    assert client.get(hpath(body["id"])).body["gpu"] == body["gpu"]


def test_unknown_is_404(client):
    assert_error(client.get(hpath(f"nothing-{uid()}")), 404, "not_found")


def test_put_id_mismatch_is_422(client):
    created = client.create(HW, hardware_body())
    assert_error(client.put(hpath(created["id"]), hardware_body()), 422, "validation_failed", "id")
    assert client.get(hpath(created["id"])).body == created


def test_etags(client):
    created = client.create(HW, hardware_body())
    path = hpath(created["id"])
    etag = client.get(path).headers["etag"]
    assert client.get(path, headers={"If-None-Match": etag}).status == 304
    assert_error(client.put(path, dict(created, gpu="x"), headers={"If-Match": '"stale"'}),
                 412, "precondition_failed")
    assert_error(client.delete(path, headers={"If-Match": '"stale"'}), 412, "precondition_failed")
    ok = client.put(path, dict(created, gpu="x"), headers={"If-Match": etag})
    assert ok.status == 200, ok
    assert ok.headers.get("etag") not in (None, etag)
    assert client.get(path, headers={"If-None-Match": etag}).status == 200
    assert client.delete(path, headers={"If-Match": ok.headers["etag"]}).status == 204


def test_filters_gpu_and_provider(client):
    prov, prov2 = "prov" + uid(), "prov" + uid()
    gpu_a, gpu_b = f"GPU A {uid()}", f"GPU B {uid()}"
    a1 = client.create(HW, hardware_body(provider=prov, gpu=gpu_a))["id"]
    a2 = client.create(HW, hardware_body(provider=prov, gpu=gpu_a))["id"]
    b1 = client.create(HW, hardware_body(provider=prov, gpu=gpu_b))["id"]
    other = client.create(HW, hardware_body(provider=prov2, gpu=gpu_a))["id"]

    def f(**params):
        items, _ = client.list_all(HW, params)
        return sorted(ids_of(items))

    assert f(provider=prov) == sorted([a1, a2, b1])
    assert f(gpu=gpu_a) == sorted([a1, a2, other])
    assert f(gpu=gpu_b) == [b1]
    assert f(gpu=gpu_a, provider=prov) == sorted([a1, a2])
    assert f(gpu=gpu_b, provider=prov2) == []


@pytest.fixture(scope="module")
def hw_sort_set(server):
    c = server.client()
    prov = "sortprov" + uid()
    base = "s" + uid()
    # (id suffix, gpu, on_demand, spot)
    spec = [("c", "gpu-c", 30.0, 3.5), ("a", "gpu-d", 10.0, 4.5), ("d", "gpu-a", 40.0, 1.5),
            ("b", "gpu-b", 20.5, 2.5)]
    for suffix, gpu, od, spot in spec:
        c.create(HW, hardware_body(f"{base}-{suffix}", gpu=gpu, provider=prov,
                                   on_demand_usd_per_hour=od, spot_usd_per_hour=spot))
    c.close()
    by = {
        "id": [f"{base}-{s[0]}" for s in sorted(spec, key=lambda s: s[0])],
        "gpu": [f"{base}-{s[0]}" for s in sorted(spec, key=lambda s: s[1])],
        "on_demand": [f"{base}-{s[0]}" for s in sorted(spec, key=lambda s: s[2])],
        "spot": [f"{base}-{s[0]}" for s in sorted(spec, key=lambda s: s[3])],
    }
    expected = {}
    for key, order in by.items():
        expected[key] = order
        expected["-" + key] = order[::-1]
    return prov, expected


@pytest.mark.parametrize("sort", ["id", "-id", "gpu", "-gpu", "on_demand", "-on_demand",
                                  "spot", "-spot"])
def test_sorts(client, hw_sort_set, sort):
    prov, expected = hw_sort_set
    whole, _ = client.list_all(HW, {"provider": prov, "sort": sort}, limit=200)
    assert ids_of(whole) == expected[sort]
    paged, _ = client.list_all(HW, {"provider": prov, "sort": sort}, limit=1)
    assert ids_of(paged) == expected[sort]


def test_default_sort_is_id(client, hw_sort_set):
    prov, expected = hw_sort_set
    r = client.get(HW, {"provider": prov})
    assert r.status == 200, r
    assert ids_of(r.body["items"]) == expected["id"]


def test_list_parameter_errors(client, hw_sort_set):
    prov, _ = hw_sort_set
    assert_error(client.get(HW, {"sort": "name"}), 400, "bad_parameter", "sort")
    assert_error(client.get(HW, {"limit": "0"}), 400, "bad_parameter", "limit")
    assert_error(client.get(HW, {"limit": "201"}), 400, "bad_parameter", "limit")
    first = client.get(HW, {"provider": prov, "limit": "1", "sort": "id"})
    cursor = first.body["next_cursor"]
    assert cursor
    assert_error(client.get(HW, {"provider": prov, "limit": "1", "sort": "gpu", "cursor": cursor}),
                 400, "bad_cursor")
    assert_error(client.get(HW, {"cursor": "not-a-cursor"}), 400, "bad_cursor")


def test_delete_refused_while_runs_reference_it_unless_cascade(client):
    model = client.create("/api/v1/models", model_body())["id"]
    hw = client.create(HW, hardware_body())["id"]
    other_hw = client.create(HW, hardware_body())["id"]
    runs = [client.create("/api/v1/benchmarks", run_body(model, hw))["id"] for _ in range(2)]
    kept = client.create("/api/v1/benchmarks", run_body(model, other_hw))["id"]

    assert_error(client.delete(hpath(hw)), 409, "conflict")
    assert client.get(hpath(hw)).status == 200
    for run in runs:
        assert client.get(f"/api/v1/benchmarks/{run}").status == 200

    d = client.delete(hpath(hw), {"cascade": "true"})
    assert d.status == 204, d
    assert_error(client.get(hpath(hw)), 404, "not_found")
    for run in runs:
        assert_error(client.get(f"/api/v1/benchmarks/{run}"), 404, "not_found")
        assert_error(client.get(f"/api/v1/benchmarks/{run}/samples"), 404, "not_found")
    # Only the runs on that hardware went; the model and other runs stay.
    assert client.get(f"/api/v1/models/{enc(model)}").status == 200
    assert client.get(f"/api/v1/benchmarks/{kept}").status == 200
    items, _ = client.list_all(f"/api/v1/models/{enc(model)}/benchmarks")
    assert ids_of(items) == [kept]


def test_cascade_on_unreferenced_hardware(client):
    hw = client.create(HW, hardware_body())["id"]
    assert client.delete(hpath(hw), {"cascade": "true"}).status == 204
    assert client.get(hpath(hw)).status == 404
