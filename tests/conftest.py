"""Shared fixtures: a tenant with an owner, an editor and a viewer, and an outsider in another
tenant, so that every test can check isolation (after healthchecks' hc/test.py)."""

import os

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from kombu import pools
from live_stack import start_worker, stop

from integrations import services
from integrations.models import ApiToken
from portal.celery import app as celery_app
from portal.models import Membership, Tenant

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """The test process opens a connection per request, as Django's default: a connection kept by
    a thread a test started would hold the test database open when the run drops it. The servers
    the tests start in processes of their own keep theirs, as deployed."""
    django_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _isolated_files_and_eager_tasks(settings, tmp_path, tmp_path_factory):
    """Files go to a fresh folder; tasks run in-process unless a test starts a real worker."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = tmp_path_factory.mktemp("incoming")  # beside, not in, the test's tmp_path
    # Hashing a password the real way costs ~0.3 s; tests sign users in by the hundred.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.PORTAL_BASE_URL = "http://testserver"
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield


def make_user(username, tenant=None, role=None):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    if tenant is not None:
        Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


@pytest.fixture
def tenant(db):
    return Tenant.objects.create(slug="acme", name="Acme")


@pytest.fixture
def other_tenant(db):
    return Tenant.objects.create(slug="globex", name="Globex")


@pytest.fixture
def owner(tenant):
    return make_user("olivia", tenant, Membership.Role.OWNER)


@pytest.fixture
def editor(tenant):
    return make_user("eddie", tenant, Membership.Role.EDITOR)


@pytest.fixture
def viewer(tenant):
    return make_user("vera", tenant, Membership.Role.VIEWER)


@pytest.fixture
def outsider(other_tenant):
    return make_user("oscar", other_tenant, Membership.Role.OWNER)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


@pytest.fixture
def calls_integration(tenant, owner):
    """The demo's JSON integration: field keys email, date, calls; a `calls` sum metric."""
    return services.create_integration(
        tenant, owner, name="Calls", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], user_key="email", date_key="date", date_format="M/D/YYYY",
        metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}],
    )


@pytest.fixture
def live_calls(calls_integration, owner):
    """The same integration out of Sandbox Mode: its uploads are processed in arrival order."""
    services.set_sandbox(calls_integration, owner, False)
    return calls_integration


@pytest.fixture
def activity_integration(tenant, owner):
    """A CSV integration with three numeric fields."""
    return services.create_integration(
        tenant, owner, name="Activity", data_type="activity", data_format="csv",
        field_keys=["email", "date", "calls", "talk_minutes", "deals"], user_key="email", date_key="date",
        date_format="M/D/YYYY",
        metrics=[{"name": n, "source_key": n, "aggregation": "sum"} for n in ("calls", "talk_minutes", "deals")],
    )


@pytest.fixture
def api_token(tenant, owner):
    """A read-write Standard API token (plaintext)."""
    _, token = services.issue_api_token(tenant, owner, "tests", ApiToken.Scope.READ_WRITE)
    return token


@pytest.fixture
def read_only_api_token(tenant, owner):
    _, token = services.issue_api_token(tenant, owner, "tests-ro", ApiToken.Scope.READ)
    return token


def reconnect():
    """Forget the broker connections made so far, so the next send uses the broker configured now."""
    pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path):
    """Tasks go through a real broker instead of running in-process: the environment's broker if
    it names one, else a filesystem broker in a folder of this test's own. Its settings, for a
    worker that reads it."""
    saved = celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {})
    env = {}
    if os.environ.get("CELERY_BROKER_URL"):
        env["CELERY_BROKER_URL"] = os.environ["CELERY_BROKER_URL"]
    else:
        folder = tmp_path / "broker"
        folder.mkdir()
        env.update(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=str(folder))
        celery_app.conf.broker_url = "filesystem://"
        celery_app.conf.broker_transport_options = {
            "data_folder_in": str(folder), "data_folder_out": str(folder), "processed_folder": str(folder),
            "store_processed": False}
    reconnect()
    celery_app.conf.task_always_eager = False
    yield env
    celery_app.control.purge()  # what no worker took stays out of the next test's broker
    celery_app.conf.task_always_eager = True
    celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved
    reconnect()


@pytest.fixture
def worker(broker, settings, tmp_path):
    """A real Celery worker process reading the test's broker; its log in tmp_path/worker.log."""
    process = start_worker(tmp_path, settings.MEDIA_ROOT, broker)
    yield process
    stop(process)
