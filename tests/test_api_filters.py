"""Every query parameter of every list in the REST API's schema holds to what the schema says of
it: an empty value where the schema asks for a non-empty string, a number or a choice, a
number with a fraction where it asks for an integer, and a filter given twice are each a 400
naming the parameter, never an answer as if the filter were absent.

The parameters are read from the OpenAPI schema itself, so a new list or filter is covered as
soon as it is documented.
"""

import pytest
from django.core.cache import cache

from tenant_data import make_tenant_data

pytestmark = pytest.mark.django_db


def documented_parameters(client, api_token):
    schema = client.get("/api/v3/schema/?format=json", HTTP_AUTHORIZATION=f"Token {api_token}").json()
    for path, operations in schema["paths"].items():
        if "{" in path or "get" not in operations:
            continue
        for parameter in operations["get"].get("parameters", []):
            if parameter["in"] == "query" and parameter["name"] != "format":
                yield path, parameter["name"], parameter["schema"]


def refuses_empty(schema):
    """The schema's own word: "" is not a value of this parameter."""
    kinds = schema.get("oneOf", [schema])
    return all(kind.get("type") == "integer" or kind.get("minLength", 0) >= 1 or "enum" in kind
               or kind.get("format") == "date" for kind in kinds)


def test_every_documented_filter_refuses_what_its_schema_refuses(client, tenant, owner, api_token):
    make_tenant_data(tenant, owner)  # rows to list, so an ignored filter would show
    seen = {"empty": 0, "fraction": 0, "twice": 0}
    for path, name, schema in documented_parameters(client, api_token):
        cases = [("twice", f"{name}=1&{name}=2")]
        if refuses_empty(schema):
            cases.append(("empty", f"{name}="))
        if schema.get("type") == "integer":
            cases.append(("fraction", f"{name}=1.5"))
        for kind, query in cases:
            cache.clear()  # the score APIs' throttle is not what this checks
            answer = client.get(f"{path}?{query}", HTTP_AUTHORIZATION=f"Token {api_token}")
            assert answer.status_code == 400, (path, query, answer.status_code, answer.content[:300])
            assert name in answer.json(), (path, query, answer.json())
            seen[kind] += 1
    # Every list with filters is reached: uploads, metric values, accounts, groups, the two score APIs,
    # feedback and the Upload API's three lists at least.
    assert seen["twice"] >= 40 and seen["empty"] >= 30 and seen["fraction"] >= 20, seen
