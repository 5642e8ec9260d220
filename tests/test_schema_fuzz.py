"""Schema fuzzing of the REST API: schemathesis against /api/v3/ (every endpoint in the OpenAPI
schema, the protocols' own included) on gunicorn as deployed, with tenant B's read-write token
while tenant A has data of every kind. It fails on any server error, any response or status
the schema does not describe, any request the schema allows that is refused or that it
forbids that is accepted, and any response that carries tenant A's data.

Slow (a few minutes): it runs when PORTAL_SLOW_TESTS is set (CI's second pass).
"""

import json
import os
import re
import subprocess
import sys

import pytest
import requests

from integrations import services
from integrations.models import ApiToken
from live_stack import gunicorn
from tenant_data import MARK, make_tenant_data

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("PORTAL_SLOW_TESTS"), reason="slow: set PORTAL_SLOW_TESTS=1"),
    pytest.mark.django_db(transaction=True),
]

SECONDS = int(os.environ.get("PORTAL_FUZZ_SECONDS", "150"))

# Where a schema-valid request may still be refused with 400: what these requests hold is checked
# across fields, which JSON Schema cannot say (a protocol's required settings, a user key among
# the field keys, a metric reading a field key; a file's content against the Data Format; a
# date_to before date_from). Every other check, and this one everywhere else, applies as it is.
CONFIG = r"""
# A request the schema forbids may also be refused by the web server before the API sees it: a
# query string that makes the request line longer than 4,094 bytes is gunicorn's 414 (documented
# in the schema). schemathesis' own list of rejections lacks 414; otherwise it is the default.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path-regex = '^/api/v3/integrations/(\{id\}/)?(uploads/)?$'
include-method = ["POST", "PATCH"]
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "409"]

[[operations]]
include-path-regex = '^/api/v3/(metric-values|feedback)/$'
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "429"]
"""


def test_the_api_and_its_schema_agree_and_hold_tenants_apart(tenant, owner, other_tenant, outsider, tmp_path,
                                                               settings):
    alpha = make_tenant_data(tenant, owner)
    # Tenant B has objects of its own, so that the fuzzer reaches past "not found".
    services.create_integration(other_tenant, outsider, name="Beta calls", data_type="beta-calls",
                                data_format="json", field_keys=["email", "date", "calls"],
                                metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    _, beta_token = services.issue_api_token(other_tenant, outsider, "fuzz", ApiToken.Scope.READ_WRITE)

    with gunicorn(tmp_path, settings.MEDIA_ROOT, env={"WEB_THREADS": "8"}) as server:
        schema = requests.get(f"{server.url}/api/v3/schema/?format=json",
                              headers={"Authorization": f"Token {beta_token}"}, timeout=30)
        assert schema.status_code == 200, schema.text[:500]
        (tmp_path / "schema.json").write_text(schema.text)
        har = tmp_path / "responses.har"
        (tmp_path / "schemathesis.toml").write_text(CONFIG)
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
             "run", str(tmp_path / "schema.json"), "--url", server.url,
             "-H", f"Authorization: Token {beta_token}", "--checks", "all", "--mode", "all",
             "--max-time", str(SECONDS), "--max-examples", "40", "--workers", "2", "--seed", "1",
             "--generation-database", "none", "--no-color", "--request-timeout", "30",
             "--report", "har", "--report-har-path", str(har)],
            cwd=tmp_path, capture_output=True, text=True, timeout=SECONDS + 240)
        log = server.log
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.txt").write_text(output)
    assert run.returncode == 0, output[-8000:]
    print("\n" + output[output.rfind("Test cases:"):].strip())

    # Nothing of tenant A in any answer to tenant B: not a name, an email, a data type, a secret.
    answers = [entry["response"]["content"].get("text", "") for entry in json.loads(har.read_text())["log"]["entries"]]
    assert len(answers) > 200, len(answers)
    leaks = [text[:300] for text in answers if MARK in text.lower() or any(s in text for s in alpha.secrets)]
    assert leaks == []
    # The access log's status follows the request line's closing quote (then the size, then the time).
    assert not re.search(r'" 5\d\d ', log), [line for line in log.splitlines() if re.search(r'" 5\d\d ', line)][:5]
