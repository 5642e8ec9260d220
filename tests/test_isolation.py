"""Tenant isolation over every URL of the site: the URL resolver is walked, and every pattern is
requested by an outsider (tenant B's member, B's API token, B's integration credentials) with
tenant A's objects in it, for every method. Each answer must be the one for an object that
does not exist (404; 405 where the method is refused before any object is looked up; 403 from
an endpoint whose URL is its own credential), must carry nothing of A's, and must change
nothing of A's.

New pages and endpoints are covered by construction; a URL parameter this test cannot fill
fails the test, so that it is taught rather than skipped.
"""

from collections import Counter

import pytest

from integrations import services
from integrations.models import ApiToken
from tenant_data import MARK, make_tenant_data, model_for, tenant_rows, url_patterns

pytestmark = pytest.mark.django_db

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MISSING_ID = 987_654_321
MISSING_SLUG = "no-such-tenant"


@pytest.fixture
def alpha(tenant, owner, client):
    data = make_tenant_data(tenant, owner)
    # Requests of A's own through the front door, accepted and refused, for its request log.
    token = data.secrets[1]
    for body in (b'[{"email": "a@alphamark.example", "date": "8/16/2016", "calls": 1}]', b"[{"):
        client.post(f"/api/v1/data/calls-{MARK}/", body, content_type="application/json",
                    HTTP_AUTHORIZATION=f"Token {token}")
    return data


@pytest.fixture
def beta(other_tenant, outsider):
    """Tenant B's credentials of every kind: a session, an API token, an inbound integration's
    AUTH_TOKEN, a REST source's API key."""
    calls = services.create_integration(other_tenant, outsider, name="Beta calls", data_type="beta-calls",
                                        data_format="json", field_keys=["email", "date", "calls"])
    source = services.create_integration(other_tenant, outsider, name="Beta feedback", protocol="source_import",
                                         source_id="src-beta")
    _, api_token = services.issue_api_token(other_tenant, outsider, "beta", ApiToken.Scope.READ_WRITE)
    return {"api_token": api_token, "auth_token": services.regenerate_integration_token(calls, outsider),
            "api_key": services.regenerate_integration_token(source, outsider)}


def fill(template, params, alpha_rows, alpha_keys, own_ids, slugs):
    """Every way of filling a URL's parameters with A's objects: [(path, baseline path)]. The
    baseline names an object that does not exist, in the same place."""
    choices = []
    for param in params:
        if param == "slug":
            options = [(slug, MISSING_SLUG if slug != slugs[1] else slug) for slug in slugs]
        elif param in ("data_type", "source_id", "key"):
            options = [(key, "no-such-key") for key in alpha_keys]
        elif param == "format":
            options = [("json", "json")]
        else:
            model = model_for(template, param, alpha_rows)
            ids = alpha_rows.get(model) if model else set().union(*alpha_rows.values())
            ids = sorted((ids or set()) - own_ids)[:4]
            if not ids:
                raise AssertionError(f"cannot fill {param!r} of {template!r} with an object of tenant A")
            options = [(str(i), str(MISSING_ID)) for i in ids]
        choices.append(options)
    combos = [[]]
    for options in choices:
        combos = [combo + [option] for combo in combos for option in options]
    filled = []
    for combo in combos[:40]:
        values = dict(zip(params, (value for value, _ in combo)))
        baseline = dict(zip(params, (other for _, other in combo)))
        if values == baseline:  # B's own page (its slug, nothing of A's): it may answer, with nothing of A's
            filled.append(("/" + template % values, None))
        else:
            filled.append(("/" + template % values, "/" + template % baseline))
    return filled


def credentials(path, beta):
    if path.startswith("/api/v1/source/"):
        return {"HTTP_X_API_KEY": beta["api_key"]}
    if path.startswith("/api/v1/"):
        return {"HTTP_AUTHORIZATION": f"Token {beta['auth_token']}"}
    if path.startswith("/api/"):
        return {"HTTP_AUTHORIZATION": f"Token {beta['api_token']}"}
    return {}


def alpha_state(tenant):
    """What must not change: each model's rows of A, and the integrations' names and settings."""
    counts = {model.__name__: len(ids) for model, ids in tenant_rows(tenant).items()}
    integrations = sorted(tenant.integrations.values_list("name", "enabled", "sandbox"))
    return counts, integrations


def test_an_outsider_gets_404_for_every_object_of_another_tenant_on_every_url(
        client, alpha, beta, tenant, other_tenant, outsider):
    client.force_login(outsider)
    client.raise_request_exception = False
    alpha_rows = tenant_rows(tenant)
    own_ids = set().union(*tenant_rows(other_tenant).values())
    alpha_keys = sorted(k for k in tenant.integrations.values_list("key", flat=True) if k)
    before = alpha_state(tenant)

    requests = []
    for name, template, params in url_patterns():
        if not params and not template.startswith(("api/", "t/")):
            continue  # the sign-in page, the home page: nothing of a tenant's in them
        for path, baseline_path in fill(template, params, alpha_rows, alpha_keys, own_ids,
                                        (tenant.slug, other_tenant.slug)) if params else [(f"/{template}", None)]:
            requests.append((baseline_path is not None, name, path, baseline_path))
    # B's own pages first: later, B's own request log holds the paths this test sends (A's keys).
    requests.sort(key=lambda item: item[0])

    checked, wrong, leaks, statuses = 0, [], [], Counter()
    baselines = {}
    for _, name, path, baseline_path in requests:
        for method in METHODS:
            headers = credentials(path, beta)
            response = client.generic(method, path, b"{}", content_type="application/json", **headers)
            status = response.status_code
            statuses[status] += 1
            checked += 1
            body = response.content.decode(errors="replace").lower()
            if MARK in body and MARK not in path.lower():
                leaks.append(f"{method} {path}")
            if baseline_path is None:  # a list of B's own: it may answer, with nothing of A's
                if status >= 500:
                    wrong.append(f"{method} {path}: {status}")
                continue
            key = (baseline_path, method)
            if key not in baselines:
                baselines[key] = client.generic(method, baseline_path, b"{}", content_type="application/json",
                                                **headers).status_code
            # What matters is that A's object cannot be told from one that does not exist: the same
            # answer, a 4xx (404 from every tenant page and API; 405 where the method is refused
            # first; an endpoint whose credential is the URL itself, a signed upload URL, says 403).
            if status != baselines[key] or not 400 <= status < 500:
                wrong.append(f"{method} {path} ({name}): {status}, for no such object {baselines[key]}")

    assert wrong == [] and leaks == [], (wrong[:20], leaks[:20])
    assert alpha_state(tenant) == before
    assert checked > 400, (checked, statuses)
    print(f"\nisolation: {checked} requests over {len(url_patterns())} URL patterns; statuses {dict(statuses)}")
