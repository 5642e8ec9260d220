"""Pulls: the portal reading a vendor's public API (reference 001, outbound).

A pull reads, in this order, the vendor's accounts, its groups, and the activity and objective
scores of one period, page by page, every exchange logged in the call log (against the
integration). It is made in steps, each a Celery task (tasks.run_pull): a step claims its
number with a conditional update (a duplicated or redelivered task makes no request twice),
reads as far as it may, and returns how long to wait before the next one:

- pacing: before each call to a score API, the integration's call log says how many calls to
  that API went out in the last minute and day; at 30 and 1000 the step stops, and the next
  one is due when the oldest of them leaves the window (a countdown, not a sleep);
- 429: the vendor's Retry-After (60 s when it gives none) before the same request again;
- 5xx, or no answer: exponential backoff; after MAX_FAILURES such failures the pull fails;
- anything else but 200 fails the pull, saying what came back.

Lost tasks (the filesystem broker forgets a message a dead worker had read) are sent again by
pull_due(), which `celery beat` runs every minute; it also starts the scheduled pulls.
"""

import datetime
import logging

import requests
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations.models import Direction, Integration
from portal.celery import app
from uploads.delivery import safety
from uploads.delivery.client import parse_retry_after
from uploads.delivery.dispatch import attempt_lease_seconds, retry_delay
from uploads.delivery.exchange import Exchanges, shared_session
from uploads.delivery.redaction import Redactor
from uploads.models import CallLog

from . import client as vendor
from .models import Pull, PulledAccount, PulledGroup, PulledScore
from .scoring import period_end, period_start

log = logging.getLogger(__name__)

RUN_PULL = "integrations.protocols.public_api.tasks.run_pull"
MAX_FAILURES = 5
DEFAULT_RETRY_AFTER = 60  # a 429 without Retry-After
LOST_AFTER_SECONDS = 120  # a step due this long ago without having run was lost


def queue_step(pull_id, step, countdown=None):
    app.signature(RUN_PULL, args=(pull_id, step)).apply_async(countdown=countdown)


def start_pull(integration, requested_by, period, day):
    """Begin a pull of the period that holds `day`; its first step is queued once the caller's
    transaction commits. Raises ValidationError when the integration cannot pull now."""
    if integration.protocol != "public_api" or integration.direction != Direction.OUTBOUND:
        raise ValidationError("Only an outbound Public API v3 integration reads a vendor's API.")
    if not integration.enabled:
        raise ValidationError("This integration is disabled; enable it on its Settings tab to pull.")
    if not integration.has_vendor_credentials:
        raise ValidationError("No vendor API token is stored; add it on the Settings tab.")
    with transaction.atomic():
        Integration.objects.select_for_update().get(pk=integration.pk)  # one pull at a time per integration
        running = Pull.objects.filter(integration=integration, status__in=[
            Pull.Status.QUEUED, Pull.Status.RUNNING, Pull.Status.WAITING]).first()
        if running is not None:
            raise ValidationError(f"Pull #{running.pk} is still under way; wait until it is done.")
        pull = Pull.objects.create(tenant_id=integration.tenant_id, integration=integration, period=period,
                                   period_start=period_start(day, period), requested_by=str(requested_by)[:200],
                                   next_run_at=timezone.now())
        transaction.on_commit(lambda: queue_step(pull.pk, 1))
    return pull


def run_step(pull_id, step):
    """Make step `step` of a pull; returns the seconds to wait before the next step, or None
    when there is none (done, failed, or this step was not ours to make)."""
    now = timezone.now()
    lease = datetime.timedelta(seconds=attempt_lease_seconds())
    claimed = Pull.objects.filter(
        Q(status__in=[Pull.Status.QUEUED, Pull.Status.WAITING]) | Q(status=Pull.Status.RUNNING, next_run_at__lt=now),
        pk=pull_id, step=step - 1,
    ).update(step=step, status=Pull.Status.RUNNING, next_run_at=now + lease,
             started_at=Coalesce(F("started_at"), now))
    if not claimed:
        return None
    pull = Pull.objects.select_related("integration").get(pk=pull_id)
    integration = pull.integration
    try:
        api = vendor.VendorApi(integration, integration.read_vendor_credentials())
    except ValueError as exc:
        return _fail(pull, f"The vendor credentials cannot be read: {exc}")
    if not api.token:
        return _fail(pull, "No vendor API token is stored; add it on the Settings tab.")
    http = Exchanges(None, min(step, 32767), Redactor(api.secrets()), session=shared_session(),
                     integration=integration)
    while pull.stage in Pull.STAGES:
        url = pull.next_url or api.first_url(pull.stage, pull)
        if pull.stage in vendor.SCORE_STAGES:
            wait = pacing_wait(integration, api.stage_url(pull.stage))
            if wait:
                return _wait(pull, wait, f"Paced: the vendor's {pull.stage} score API allows 30 calls a minute "
                                         "and 1000 a day.")
        try:
            answer = http.exchange(api.request(url))
        except safety.RefusedDestination as exc:
            return _fail(pull, str(exc))
        except requests.RequestException as exc:
            return _passing_failure(pull, f"The vendor could not be reached ({type(exc).__name__}).")
        if answer.status_code == 429:
            retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            return _wait(pull, DEFAULT_RETRY_AFTER if retry_after is None else max(1.0, retry_after),
                         f"The vendor answered 429 Too Many Requests at {pull.stage}; asking again after its "
                         "Retry-After.")
        if answer.status_code >= 500:
            return _passing_failure(pull, f"The vendor answered {answer.status_code} at {pull.stage}.")
        if answer.status_code != 200:
            said = answer.text[:300] or "no reason given"
            return _fail(pull, f"The vendor answered {answer.status_code} at {pull.stage}: {http.redactor.text(said)}")
        try:
            page = api.read_page(answer, url)
        except vendor.VendorAnswerError as exc:
            return _fail(pull, str(exc))
        keep_page(pull, page.results)
        pull.next_url = page.next_url
        if not page.next_url:
            pull.stage = _after(pull.stage)
        pull.failures = 0
        # Each page stored renews the step's lease: a long list is not taken for a dead worker's.
        Pull.objects.filter(pk=pull.pk).update(stage=pull.stage, next_url=pull.next_url, counts=pull.counts,
                                               failures=0, next_run_at=timezone.now() + lease)
    return _finish(pull)


def _after(stage):
    index = Pull.STAGES.index(stage)
    return Pull.STAGES[index + 1] if index + 1 < len(Pull.STAGES) else "done"


def pacing_wait(integration, api_url, now=None):
    """Seconds until the next call to this score API keeps within the vendor's limits (0: now).

    Counted from the integration's own call log: every exchange it made with the API, whatever
    pull or worker made it."""
    now = now or timezone.now()
    calls = CallLog.objects.filter(integration=integration, url__startswith=api_url, dry_run=False)
    wait = 0.0
    for limit, seconds in vendor.SCORE_LIMITS:
        window = now - datetime.timedelta(seconds=seconds)
        recent = list(calls.filter(created_at__gt=window).order_by("-created_at")
                      .values_list("created_at", flat=True)[:limit])
        if len(recent) >= limit:
            # A second of margin: the vendor counts the call when it arrives, a moment after we start it.
            frees = recent[limit - 1] + datetime.timedelta(seconds=seconds + 1)
            wait = max(wait, (frees - now).total_seconds())
    return wait


def keep_page(pull, results):
    """Store a page of the current stage's records."""
    stage = pull.stage
    if stage == "accounts":
        PulledAccount.objects.bulk_create([PulledAccount(pull=pull, **vendor.account_of(r)) for r in results],
                                          batch_size=1000)
    elif stage == "groups":
        PulledGroup.objects.bulk_create([PulledGroup(pull=pull, **vendor.group_of(r)) for r in results],
                                        batch_size=1000)
    else:
        scores = {}
        for record in results:
            row = vendor.score_of(record)
            if row["entity_id"]:
                scores[(row["entity_type"], row["entity_id"])] = row  # the last of a repeated EntityID
        PulledScore.objects.bulk_create(
            [PulledScore(integration_id=pull.integration_id, pull=pull, kind=stage, period=pull.period,
                         period_start=pull.period_start, **row) for row in scores.values()],
            batch_size=1000, update_conflicts=True, update_fields=["pull", "name", "score"],
            unique_fields=["integration", "period", "period_start", "kind", "entity_type", "entity_id"])
    pull.counts[stage] = pull.counts.get(stage, 0) + len(results)


def _wait(pull, seconds, message):
    Pull.objects.filter(pk=pull.pk).update(status=Pull.Status.WAITING, message=message[:500],
                                           next_run_at=timezone.now() + datetime.timedelta(seconds=seconds))
    return seconds


def _passing_failure(pull, message):
    failures = pull.failures + 1
    if failures >= MAX_FAILURES:
        return _fail(pull, f"{message} Gave up after {failures} tries.")
    Pull.objects.filter(pk=pull.pk).update(failures=failures)
    pull.failures = failures
    return _wait(pull, retry_delay(failures), f"{message} Trying again ({failures} of {MAX_FAILURES}).")


def _fail(pull, message):
    with transaction.atomic():
        PulledAccount.objects.filter(pull=pull).delete()  # half a list would look whole
        PulledGroup.objects.filter(pull=pull).delete()
        Pull.objects.filter(pk=pull.pk).update(status=Pull.Status.FAILED, message=message[:500],
                                               finished_at=timezone.now(), next_run_at=None)
    log.warning("Pull %s of integration %s failed: %s", pull.pk, pull.integration_id, message)
    return None


def _finish(pull):
    counts = pull.counts
    message = (f"Read {counts.get('accounts', 0):,} accounts, {counts.get('groups', 0):,} groups, "
               f"{counts.get('activity', 0):,} activity and {counts.get('objective', 0):,} objective scores.")
    with transaction.atomic():
        # The newest accounts and groups replace the ones read before.
        PulledAccount.objects.filter(pull__integration_id=pull.integration_id).exclude(pull=pull).delete()
        PulledGroup.objects.filter(pull__integration_id=pull.integration_id).exclude(pull=pull).delete()
        Pull.objects.filter(pk=pull.pk).update(status=Pull.Status.DONE, stage="done", message=message,
                                               finished_at=timezone.now(), next_run_at=None)
    return None


def latest_done(integration):
    return Pull.objects.filter(integration=integration, status=Pull.Status.DONE).first()


def pull_due(now=None):
    """Start the scheduled pulls that are due, and send again the steps whose task was lost.
    Returns (pulls started, pulls resumed) as lists of ids."""
    now = now or timezone.now()
    started, resumed = [], []
    lost = Pull.objects.filter(status__in=[Pull.Status.QUEUED, Pull.Status.WAITING, Pull.Status.RUNNING],
                               next_run_at__lt=now - datetime.timedelta(seconds=LOST_AFTER_SECONDS))
    for pull_id, step in lost.values_list("id", "step"):
        queue_step(pull_id, step + 1)
        resumed.append(pull_id)
    integrations = Integration.objects.filter(protocol="public_api", direction=Direction.OUTBOUND, enabled=True,
                                              sandbox=False)
    yesterday = (now - datetime.timedelta(days=1)).date()
    for integration in integrations:
        hours = (integration.settings or {}).get("schedule", "24")
        if hours == "off":
            continue
        newest = Pull.objects.filter(integration=integration).order_by("-created_at").first()
        if newest is not None and (newest.is_active
                                   or newest.created_at > now - datetime.timedelta(hours=int(hours))):
            continue
        period = (integration.settings or {}).get("period", "day")
        try:
            started.append(start_pull(integration, "schedule", period, yesterday).pk)
        except ValidationError as exc:
            log.warning("Scheduled pull of integration %s not started: %s", integration.pk, " ".join(exc.messages))
    return started, resumed


def period_label(pull):
    end = period_end(pull.period_start, pull.period)
    return str(pull.period_start) if end == pull.period_start else f"{pull.period_start} to {end}"
