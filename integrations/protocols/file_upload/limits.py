"""The File Upload API's limits, in one place."""

from django.conf import settings

# Reference 003: "File size maximum is 5GB": 5 GiB, 5,368,709,120 bytes, as S3 takes in one PUT.
MAX_FILE_BYTES = 5 * 1024 ** 3
# A receiver refreshes its claim on a file every minute; one silent this long died mid-PUT.
STALE_CLAIM_SECONDS = 15 * 60


def url_seconds():
    """How long a URL of step 1 works: an hour, unless PORTAL_FILE_UPLOAD_URL_SECONDS says otherwise."""
    return int(getattr(settings, "PORTAL_FILE_UPLOAD_URL_SECONDS", 3600))
