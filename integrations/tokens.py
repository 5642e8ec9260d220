"""Issued secrets (integration AUTH_TOKENs and API tokens): shown once, stored as hashes.

A token is `<prefix>.<secret>`. The prefix is stored in clear to show the user
which token is which; the whole token is stored only as its SHA-256, and a
presented token is found by that hash. The tokens are 256-bit random, so a fast hash is
enough: there is nothing to brute-force.
"""

import hashlib
import secrets

from django.db import models
from django.utils import timezone

PREFIX_LENGTH = 8


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def new_token():
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    return f"{prefix}.{secrets.token_urlsafe(32)}"


class HashedTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)

    def find(self, token):
        """The active row for this plaintext token, or None."""
        prefix, _, _ = (token or "").partition(".")
        if len(prefix) != PREFIX_LENGTH:
            return None
        # Found by its hash, which is unique: a lookup that takes longer for some hashes than for
        # others tells nothing, since no caller can choose the hash of a token it does not know.
        rows = list(self.active().filter(token_hash=hash_token(token)).order_by()[:1])
        return rows[0] if rows else None


class HashedToken(models.Model):
    """Abstract base: a secret issued by the portal, stored only as its hash."""

    prefix = models.CharField(max_length=PREFIX_LENGTH, db_index=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = HashedTokenQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def issue(cls, **fields):
        """Create a row and return (row, plaintext). The plaintext is never stored."""
        token = new_token()
        row = cls.objects.create(prefix=token.split(".")[0], token_hash=hash_token(token), **fields)
        return row, token

    @property
    def is_active(self):
        return self.revoked_at is None

    @property
    def masked(self):
        return f"{self.prefix}.••••••••"

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch(self):
        """Record use without a write on every request of a burst (once a minute at most)."""
        now = timezone.now()
        if self.last_used_at is None or (now - self.last_used_at).total_seconds() > 60:
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
