"""Reference 001's accounts and groups: usernames unique per tenant (made from the email where
missing), and group managers."""

import itertools
import re

import django.core.validators
from django.db import migrations, models


def usernames_from_emails(apps, schema_editor):
    """Every account gets a username unique in its tenant (duplicates from before are renumbered)."""
    Account = apps.get_model("uploads", "Account")
    tenants = Account.objects.values_list("tenant_id", flat=True).distinct()
    for tenant_id in tenants:
        taken, renamed = set(), []
        for account in Account.objects.filter(tenant_id=tenant_id).order_by("id"):
            name = account.username
            if name and name.lower() not in taken:
                taken.add(name.lower())
                continue
            account.username = next(n for n in _candidates(account.email) if n.lower() not in taken)
            taken.add(account.username.lower())
            renamed.append(account)
        Account.objects.bulk_update(renamed, ["username"], batch_size=1000)


def _candidates(email):
    email = (email or "").strip().lower()
    local = re.sub(r"[^\w.+-]", "", email.split("@", 1)[0])[:140] or "user"
    yield local
    if re.fullmatch(r"^[\w.@+-]+$", email) and len(email) <= 150:
        yield email
    for number in itertools.count(2):
        yield f"{local}-{number}"


class Migration(migrations.Migration):

    dependencies = [
        ("uploads", "0006_call_log_for_pulls_and_request_log"),
    ]

    operations = [
        migrations.AddField(
            model_name="group",
            name="managers",
            field=models.ManyToManyField(blank=True, related_name="managed_groups", to="uploads.account"),
        ),
        migrations.AlterField(
            model_name="account",
            name="username",
            field=models.CharField(
                blank=True, max_length=150,
                help_text="The EntityID of this person's scores; unique in the tenant. Left blank, it is made from "
                          "the email.",
                validators=[django.core.validators.RegexValidator("^[\\w.@+-]+$", "Letters, digits and @ . + - _ only.")],
            ),
        ),
        migrations.RunPython(usernames_from_emails, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(condition=models.Q(("username", ""), _negated=True),
                                               fields=("tenant", "username"), name="account_username_unique"),
        ),
    ]
