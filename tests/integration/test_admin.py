"""The admin API: authorized by Cedar (role admin), audited, secrets shown once."""

from __future__ import annotations

import pytest

from .conftest import access_token
from .test_gateway import auth, infer_body


@pytest.fixture(scope="module")
def admin(gateway):
    """An admin principal and its token (the baseline permits role admin to manage)."""
    created = gateway.workspace.principals.add("root", role="admin", attributes={})
    with gateway.http() as http:
        plain = access_token(http, created)  # without the admin scopes
        assert http.get("/admin/principals", headers=auth(plain)).status_code == 403
        token = http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials",
                  "scope": "manage_principals manage_policies"},
            auth=(created.principal.client_id, created.secret.get_secret_value()),
        ).json()["access_token"]  # fmt: skip
    gateway.tokens += [plain, token]
    return auth(token)


def test_only_admins_reach_the_admin_api(gateway, admin):
    with gateway.http() as http:
        analyst = auth(gateway.token(gateway.analyst))
        assert http.get("/admin/principals", headers=analyst).status_code == 403
        assert http.get("/admin/principals").status_code == 401
        listed = http.get("/admin/principals", headers=admin)
    assert listed.status_code == 200
    names = {p["name"] for p in listed.json()["principals"]}
    assert {"ana", "root"} <= names
    assert all("secret" not in str(p) for p in listed.json()["principals"])


def test_an_admin_adds_a_principal_that_then_works_and_disables_it(gateway, admin, digits):
    with gateway.http() as http:
        added = http.post(
            "/admin/principals",
            json={"name": "scorer", "role": "analyst", "attributes": {"team": "fraud"}},
            headers=admin,
        )
        assert added.status_code == 201, added.text
        client_id, secret = added.json()["client_id"], added.json()["client_secret"]
        gateway.tokens.append(secret)
        token = http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).json()["access_token"]
        gateway.tokens.append(token)
        body = infer_body(digits.images[:1])
        assert (
            http.post("/v2/models/digits/infer", json=body, headers=auth(token)).status_code == 200
        )
        again = http.post("/admin/principals", json={"name": "scorer", "role": "analyst"},
                          headers=admin)  # fmt: skip
        assert again.status_code == 409
        bad = http.post("/admin/principals", json={"name": "x y", "role": "analyst"},
                        headers=admin)  # fmt: skip
        assert bad.status_code == 400
        assert http.post("/admin/principals/scorer/disable", headers=admin).status_code == 200
    records = [e.event for e in gateway.workspace.audit.tail(40)]
    assert any(r.reason == "added principal scorer with role analyst" for r in records)
    assert any(r.event == "admin_principals" and r.reason == "disabled principal scorer"
               for r in records)  # fmt: skip


def test_api_keys_through_the_admin_api(gateway, admin, digits):
    with gateway.http() as http:
        created = http.post(
            "/admin/api-keys",
            json={"principal": "ana", "actions": ["infer"], "models": ["digits"], "days": 1},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        gateway.tokens.append(key)
        body = infer_body(digits.images[:1])
        assert http.post("/v2/models/digits/infer", json=body, headers=auth(key)).status_code == 200
        key_id = created.json()["key_id"]
        assert http.delete(f"/admin/api-keys/{key_id}", headers=admin).status_code == 200
        assert http.post("/v2/models/digits/infer", json=body, headers=auth(key)).status_code == 401


def test_policies_change_only_into_a_set_that_validates(gateway, admin, digits):
    """A forbid written through the API applies within a second; a broken file is refused."""
    import time

    body = infer_body(digits.images[:1])
    forbid = '@id("no-digits")\nforbid (principal, action, resource == Bastion::Model::"digits");\n'
    with gateway.http() as http:
        analyst = auth(gateway.token(gateway.analyst))
        broken = http.put("/admin/policies/extra.cedar", content="permit (", headers=admin)
        assert broken.status_code == 400
        wrong = http.put(
            "/admin/policies/extra.cedar",
            headers=admin,
            content='permit (principal, action == Bastion::Action::"fly", resource);',
        )
        assert wrong.status_code == 400 and "schema" in wrong.json()["error"]
        written = http.put("/admin/policies/extra.cedar", content=forbid, headers=admin)
        assert written.status_code == 200 and "no-digits" in written.json()["policy_ids"]
        deadline = time.monotonic() + 5
        while http.post("/v2/models/digits/infer", json=body, headers=analyst).status_code != 403:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        files = http.get("/admin/policies", headers=admin).json()["files"]
        assert files["extra.cedar"] == forbid
        assert http.delete("/admin/policies/extra.cedar", headers=admin).status_code == 200
        assert http.delete("/admin/policies/extra.cedar", headers=admin).status_code == 404
        while http.post("/v2/models/digits/infer", json=body, headers=analyst).status_code != 200:
            assert time.monotonic() < deadline + 5
            time.sleep(0.2)


def test_disabling_through_the_admin_api_refuses_the_next_request_at_once(gateway, admin, digits):
    """Token works (and is cached), admin disables, the very next request is 401: no sleep."""
    body = infer_body(digits.images[:1])
    with gateway.http() as http:
        added = http.post("/admin/principals", json={"name": "doomed", "role": "analyst"},
                          headers=admin)  # fmt: skip
        assert added.status_code == 201, added.text
        client_id, secret = added.json()["client_id"], added.json()["client_secret"]
        gateway.tokens.append(secret)
        tokens = []
        for _ in range(2):  # the second token is accepted from the cached principal
            token = http.post("/oauth2/token", data={"grant_type": "client_credentials"},
                              auth=(client_id, secret)).json()["access_token"]  # fmt: skip
            gateway.tokens.append(token)
            tokens.append(auth(token))
        key = http.post(
            "/admin/api-keys",
            json={"principal": "doomed", "actions": ["infer"], "models": ["digits"], "days": 1},
            headers=admin,
        ).json()["key"]
        gateway.tokens.append(key)
        for headers in (*tokens, auth(key)):
            for _ in range(2):  # the second use is served from the gateway's caches
                answer = http.post("/v2/models/digits/infer", json=body, headers=headers)
                assert answer.status_code == 200, answer.text
        assert http.post("/admin/principals/doomed/disable", headers=admin).status_code == 200
        after = [
            http.post("/v2/models/digits/infer", json=body, headers=headers).status_code
            for headers in (*tokens, auth(key))
        ]
        described = http.get("/v2/models/digits", headers=tokens[0]).status_code
    assert after == [401, 401, 401]
    assert described == 401


def test_revoking_an_api_key_through_the_admin_api_refuses_it_at_once(gateway, admin, digits):
    """A key used twice (warm), revoked through the admin API: the very next use is 401."""
    body = infer_body(digits.images[:1])
    with gateway.http() as http:
        created = http.post(
            "/admin/api-keys",
            json={"principal": "ana", "actions": ["infer", "describe"], "models": ["*"],
                  "days": 1},
            headers=admin,
        ).json()  # fmt: skip
        gateway.tokens.append(created["key"])
        headers = auth(created["key"])
        statuses = [http.get("/v2/models/digits", headers=headers).status_code for _ in range(2)]
        assert statuses == [200, 200]
        revoked = http.delete(f"/admin/api-keys/{created['key_id']}", headers=admin)
        assert revoked.status_code == 200
        assert http.get("/v2/models/digits", headers=headers).status_code == 401
        assert http.post("/v2/models/digits/infer", json=body, headers=headers).status_code == 401


# JSON texts whose strings UTF-8 cannot encode: lone high, lone low, a reversed pair.
_SURROGATES = ('"\\ud800"', '"\\udc00"', '"\\ude00\\ud83d"')


def test_admin_bodies_with_lone_surrogates_are_400_and_store_nothing(gateway, admin):
    """T3: a surrogate in a value, a key or nested anywhere is 400; nothing is stored."""
    json_body = admin | {"Content-Type": "application/json"}
    with gateway.http() as http:
        for i, lit in enumerate(_SURROGATES):
            name = f'"uni{i}"'
            sent = [
                ("POST", "/admin/principals",
                 f'{{"name": {name}, "role": "admin", "attributes": {{"a": {lit}}}}}'),
                ("POST", "/admin/principals",
                 f'{{"name": {name}, "role": "admin", "attributes": {{{lit}: "x"}}}}'),
                ("POST", "/admin/principals", f'{{"name": {lit}, "role": "admin"}}'),
                ("POST", "/admin/principals", f'{{"name": {name}, "role": {lit}}}'),
                ("POST", "/admin/principals",
                 f'{{"name": {name}, "role": "admin", "extra": [[{{"k": {lit}}}]]}}'),
                ("POST", "/admin/principals",
                 f'{{"name": {name}, "role": "admin", "public_jwk": {{"kty": "OKP", '
                 f'"crv": "Ed25519", "x": {lit}}}}}'),
                ("POST", "/admin/api-keys",
                 f'{{"principal": "ana", "actions": ["infer"], "models": [{lit}]}}'),
                ("POST", "/admin/api-keys",
                 f'{{"principal": "ana", "actions": [{lit}], "models": ["digits"]}}'),
                ("PUT", "/admin/principals/ana/public-key",
                 f'{{"kty": "OKP", "crv": "Ed25519", "x": {lit}}}'),
            ]  # fmt: skip
            for method, path, body in sent:
                refused = http.request(method, path, content=body.encode(), headers=json_body)
                assert refused.status_code == 400, (body, refused.text)
        listed = http.get("/admin/principals", headers=admin)
        assert listed.status_code == 200, listed.text
        assert not any(p["name"].startswith("uni") for p in listed.json()["principals"])
        keys = http.get("/admin/api-keys", headers=admin)
        assert keys.status_code == 200, keys.text
        emoji = http.post("/admin/principals", headers=json_body,
                          content=b'{"name": "uni-ok", "role": "analyst", '
                                  b'"attributes": {"team": "\\ud83d\\ude00"}}')  # fmt: skip
        assert emoji.status_code == 201, emoji.text
        gateway.tokens.append(emoji.json()["client_secret"])
        assert emoji.json()["attributes"] == {"team": "\N{GRINNING FACE}"}


def test_a_principal_stored_with_a_lone_surrogate_before_the_fix_still_lists(gateway, admin):
    """A row written before the check (attribute U+D800) no longer breaks every listing."""
    import time

    from bastion.storage import tables

    with gateway.workspace.database.transaction() as db:
        db.execute(tables.principals.insert().values(
            client_id="bcl_" + "e" * 24, name="olduni", role="analyst",
            attributes={"a": "\ud800x"}, secret_hash="0" * 64, disabled=False,
            created_at=time.time(), public_jwk=None,
        ))  # fmt: skip
    with gateway.http() as http:
        listed = http.get("/admin/principals", headers=admin)
    assert listed.status_code == 200, listed.text
    old = next(p for p in listed.json()["principals"] if p["name"] == "olduni")
    assert old["attributes"] == {"a": "\\ud800x"}  # shown escaped, never crashing
