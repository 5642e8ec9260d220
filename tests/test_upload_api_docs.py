"""The curl sequences the Upload API is documented with (docs/protocols.md, "Reference 002", and
the Credentials tab) are run as they are written: bash, curl and python3 against a live server,
with a client secret that needs its URL-encoding."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse
from oauth2_provider.models import Application

from integrations import services
from integrations.protocols.upload_api.credentials import issue_client_secret
from integrations.protocols.upload_api.models import EventRecord, TimeRecord

DOCS = Path(__file__).resolve().parents[1] / "docs" / "protocols.md"
SECRET = "Sx+/=%sécret"  # every character the seed warns about, and one that is not ASCII

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ("bash", "curl", "python3", "base64")),
                       reason="the documented sequence needs bash, curl, python3 and base64"),
]


@pytest.fixture
def credentials(tenant, owner):
    integration = services.create_integration(tenant, owner, name="Hours", protocol="upload_api")
    client_id, _ = issue_client_secret(integration, owner)
    application = Application.objects.get(client_id=client_id)
    application.client_secret = SECRET
    application.save()
    return integration, client_id, services.regenerate_integration_token(integration, owner)


def run(script, **variables):
    assignments = "".join(f"{name}={_quoted(value)}\n" for name, value in variables.items())
    done = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", assignments + script], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _quoted(value):
    return "'" + value.replace("'", "'\\''") + "'"


def assert_the_seeds_workflow_ran(answers):
    status, ids = answers
    assert status == "completedsuccessfully"
    assert ids == [{"dataset": "Data", "row": 1, "id": TimeRecord.objects.get().pk},
                   {"dataset": "EventData", "row": 1, "id": EventRecord.objects.get().pk}]
    assert TimeRecord.objects.get().reference == "User1"


def test_the_documented_curl_sequence_works(live_server, credentials):
    _, client_id, key = credentials
    section = DOCS.read_text().split("## Reference 002", 1)[1].split("\n## ", 1)[0]
    script = next(block for block in re.findall(r"```sh\n(.*?)```", section, re.S) if "ACCESS_TOKEN=$(curl" in block)

    answers = run(script, BASE=f"{live_server.url}/api/upload-api", CLIENT_ID=client_id, CLIENT_SECRET=SECRET,
                  API_KEY=key)

    assert_the_seeds_workflow_ran(answers)


def test_the_credentials_tabs_curl_sequence_works(live_server, client, owner, tenant, credentials):
    integration, client_id, key = credentials
    client.force_login(owner)
    page = client.get(reverse("integration_credentials", args=[tenant.slug, integration.pk]),
                      SERVER_NAME=live_server.thread.host, SERVER_PORT=str(live_server.thread.port)).content.decode()
    script = html.unescape(re.search(r'<pre class="example" id="curl-sequence">(.*?)</pre>', page, re.S).group(1))
    assert f"BASE={live_server.url}/api/upload-api\nCLIENT_ID={client_id}\n" in script
    script = (script.replace("CLIENT_SECRET='your_client_secret'", f"CLIENT_SECRET={_quoted(SECRET)}")
              .replace("API_KEY='your_api_key'", f"API_KEY={_quoted(key)}"))

    assert_the_seeds_workflow_ran(run(script))
