"""The score APIs' limits, as reference 001 states them: each Scores API (activity, objective)
allows 30 calls a minute and 1000 a day, counted per API and per tenant (every token of a
tenant shares its quota), in the cache every web process shares (settings.CACHES).

DRF's SimpleRateThrottle keeps a history of allowed calls per key and records a call only when
it is allowed. Chained as two throttles, though, DRF asks both even when the first refuses,
so a call refused by the minute limit would still use up the day's quota. Here one throttle
holds both windows: a call is checked against both, and recorded in both only when both
allow it. The check and the record happen under a short lock in the same cache, so that
concurrent calls from several processes cannot both take the last place.
"""

import math
import time
import uuid
from contextlib import contextmanager

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

LOCK_SECONDS = 5  # a lock outlives no crashed holder by more than this
LOCK_WAIT_SECONDS = 2


class ScoreApiThrottle(BaseThrottle):
    """One score API's limits (`scope`: "activity_score" or "objective_score"; the rates are
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope] and [scope + "_day"])."""

    scope = ""
    cache = default_cache
    timer = time.time

    def __init__(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES  # read per request: settings may change in tests
        self.windows = [parse_rate(rates[self.scope]), parse_rate(rates[f"{self.scope}_day"])]
        self.wait_seconds = None
        self.refused_by = None

    def keys(self, tenant_id):
        return [f"throttle:{self.scope}:{tenant_id}:{duration}" for _, duration in self.windows]

    def allow_request(self, request, view):
        tenant_id = request.user.tenant.pk
        keys = self.keys(tenant_id)
        with locked(self.cache, f"throttle-lock:{self.scope}:{tenant_id}"):
            now = self.timer()
            stored = self.cache.get_many(keys)
            histories = []
            for key, (limit, duration) in zip(keys, self.windows):
                history = [moment for moment in stored.get(key, []) if moment > now - duration]  # newest first
                if len(history) >= limit:
                    # The oldest call that keeps the window full must leave it before the next one fits.
                    self.wait_seconds = max(1, math.ceil(history[limit - 1] + duration - now))
                    self.refused_by = (limit, duration)
                    return False
                histories.append(history)
            self.cache.set_many({key: [now] + history for key, history in zip(keys, histories)},
                                timeout=max(duration for _, duration in self.windows))
        return True

    def wait(self):
        return self.wait_seconds

    def refusal(self):
        """What the 429 says (its body must contain "Too Many Requests")."""
        limit, duration = self.refused_by
        per = {60: "a minute", 86400: "a day", 3600: "an hour", 1: "a second"}.get(duration, f"{duration} seconds")
        name = self.scope.replace("_", " ").title()
        return f"Too Many Requests: the {name} API allows {limit} calls {per} per tenant."

    def reset(self, tenant_id):
        """Forget a tenant's calls to this API (support, tests)."""
        self.cache.delete_many(self.keys(tenant_id))


class ActivityScoreThrottle(ScoreApiThrottle):
    scope = "activity_score"


class ObjectiveScoreThrottle(ScoreApiThrottle):
    scope = "objective_score"


def parse_rate(rate):
    """"30/minute" → (30, 60), as DRF reads rates."""
    number, period = rate.split("/")
    return int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


@contextmanager
def locked(cache, key):
    """Hold a lock in the shared cache (cache.add is atomic in the database cache and in Redis).

    A holder that crashed leaves a lock that expires after LOCK_SECONDS; a caller that cannot
    get it within LOCK_WAIT_SECONDS goes on without it rather than fail the request.
    """
    token = uuid.uuid4().hex
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    held = cache.add(key, token, LOCK_SECONDS)
    while not held and time.monotonic() < deadline:
        time.sleep(0.005)  # another process is between its check and its record: a few ms
        held = cache.add(key, token, LOCK_SECONDS)
    try:
        yield held
    finally:
        if held and cache.get(key) == token:
            cache.delete(key)
