"""Seed a demo tenant with an inbound integration of every protocol the portal speaks, an
outbound one, and print fresh credentials.

The outbound one sends to the portal's own "calls" endpoint, with its token as the vendor's
AUTH_TOKEN: in Sandbox Mode a file is checked and the call logged (a dry run); out of it, the
call is refused unless PORTAL_OUTBOUND_ALLOWED_NETWORKS allows the portal's own address
(`make run` allows 127.0.0.1/32, the address it serves on).

A staff user for the Django admin (SLUG-support) is made too, with the same password.

Idempotent: run it again and the same tenant, users and integrations are reused; only the
credentials are new (old ones are revoked), since a secret can only be shown when it is issued.
"""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import registry, services
from integrations.models import ApiToken, Integration
from portal.models import Membership, Tenant

DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = "Create (or refresh) a demo tenant, its owner and sandboxed integrations; print credentials."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="demo", help="tenant slug (default: demo)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--base-url", default=None, help="base URL shown in endpoints")

    @transaction.atomic
    def handle(self, *args, tenant, base_url, **options):
        base = (base_url or settings.PORTAL_BASE_URL).rstrip("/")
        tenant_row, _ = Tenant.objects.get_or_create(slug=tenant, defaults={"name": f"{tenant.title()} Inc."})
        user, _ = get_user_model().objects.get_or_create(
            username=f"{tenant}-admin", defaults={"email": f"admin@{tenant}.example.com"}
        )
        user.set_password(DEMO_PASSWORD)
        user.save()
        Membership.objects.update_or_create(tenant=tenant_row, user=user, defaults={"role": Membership.Role.OWNER})
        # Support staff: the Django admin (/admin/) is theirs; a tenant's owner is not staff.
        support, _ = get_user_model().objects.get_or_create(
            username=f"{tenant}-support", defaults={"email": f"support@{tenant}.example.com"})
        support.is_staff = support.is_superuser = True
        support.set_password(DEMO_PASSWORD)
        support.save()

        integrations = []
        for protocol in registry.all_protocols():
            integrations += protocol.demo(tenant_row, user, base)

        calls = next((item for item in integrations if item.get("data_type") == "calls"), None)
        outbound = self.outbound_demo(tenant_row, user, calls) if calls else None

        for old in ApiToken.objects.filter(tenant=tenant_row, name="demo").active():
            services.revoke_api_token(old, user)
        _, api_token = services.issue_api_token(tenant_row, user, "demo", ApiToken.Scope.READ_WRITE)

        result = {
            "base_url": base,
            "tenant": tenant_row.slug,
            "username": user.username,
            "password": DEMO_PASSWORD,
            "support_username": support.username,
            "admin_url": f"{base}/admin/",
            "api_token": api_token,
            "integrations": integrations,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            # Said apart from the JSON (on stderr), so that a script reading it is not disturbed.
            self.stderr.write("Fresh demo credentials were issued: the ones issued before (by an earlier run, "
                              "or by make run) are revoked.")
            return
        self.stdout.write(f"Demo tenant '{tenant_row.slug}': sign in at {base}/ as {user.username} / {DEMO_PASSWORD}")
        self.stdout.write(f"  Django admin, for support staff: {base}/admin/ as {support.username} / {DEMO_PASSWORD}")
        for item in integrations:
            self.stdout.write(f"  {item['name']} ({item['protocol']}): {item.get('endpoint', '')}")
        if outbound is not None:
            self.stdout.write(f"  {outbound.name}: in Sandbox Mode, its uploads are dry runs to {calls['endpoint']}; "
                              "turn Sandbox Mode off and they are delivered there.")
        self.stdout.write("  No tokens are printed here. Generate one on an integration's Credentials tab (it is "
                          "shown once), or run `manage.py demo --json`, which prints fresh ones and revokes "
                          "these and any issued before.")

    def outbound_demo(self, tenant, user, calls):
        """An outbound integration to the portal's own calls endpoint, with its current token; None
        when the base URL is not one a vendor endpoint may have."""
        vendor_token = {"auth_token": calls["auth_token"]}
        integration = Integration.objects.filter(tenant=tenant, direction="outbound", protocol="data_integration",
                                                 key="calls").first()
        if integration is not None and integration.endpoint_url == calls["endpoint"]:
            # The calls token was just issued anew: the outbound integration must send that one,
            # even from a shell whose environment does not allow the loopback endpoint (make run's does).
            return services.replace_vendor_credentials(integration, user, vendor_token)
        try:
            with transaction.atomic():
                if integration is None:
                    return services.create_integration(
                        tenant, user, name="Calls, sent to this portal (outbound)", direction="outbound",
                        protocol="data_integration", data_type="calls", data_format="json",
                        field_keys=calls["field_keys"], endpoint_url=calls["endpoint"], credentials=vendor_token,
                    )
                return services.update_integration(integration, user, {"endpoint_url": calls["endpoint"]},
                                                   credentials=vendor_token)
        except ValidationError:
            return None
