"""Celery tasks of the Upload API: thin, and safe to run twice."""

from celery import shared_task
from oauth2_provider.models import clear_expired


@shared_task(ignore_result=True)
def clear_expired_tokens():
    """Delete expired access tokens (they are stored as hashes, and useless once expired);
    settings.CELERY_BEAT_SCHEDULE runs it hourly. django-oauth-toolkit's own clear_expired."""
    clear_expired()
