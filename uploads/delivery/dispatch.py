"""Dispatches: sending a stored upload to a vendor, attempt by attempt.

start() begins one (from the intake, or a Resend), in Sandbox Mode as a dry run that logs
the requests that would be made and sends nothing. run_attempt() is what the Celery task
calls: it claims attempt n (a conditional UPDATE, so a duplicated or redelivered task sends
nothing twice, and an attempt abandoned by a dead worker is taken over once its claim is
not renewed for a lease), lets the protocol's client make its exchanges, and writes the outcome:
delivered, failed, retry later (exponential backoff with jitter, never sooner than the
vendor's Retry-After), or check again later (the vendor is still working on it).
"""

import logging
import random
from datetime import timedelta

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import Integration
from portal.audit import Action, actor_label, record
from portal.db import unflushed_session, update_together

from .. import queue
from ..models import Dispatch, Upload
from . import safety
from .client import Body, NotConfigured, Outcome, error
from .exchange import Exchanges, attempt_lease_seconds, shared_session
from .redaction import Redactor

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS = 24 * 3600  # a Retry-After beyond a day is not worth waiting for


def client_for(integration):
    try:
        credentials = integration.read_vendor_credentials()
    except ValueError as exc:
        raise NotConfigured(str(exc)) from None
    try:
        return integration.protocol_spec.client(integration, credentials)
    except ValidationError as exc:
        raise NotConfigured(" ".join(exc.messages)) from None


def can_send(integration):
    """Raise ValidationError unless the integration can send now."""
    if integration.is_inbound:
        raise ValidationError("This integration receives files; it does not send them.")
    if not integration.enabled:
        raise ValidationError("This integration is disabled; enable it on its Settings tab to send.")
    if integration.protocol_spec.client_class is None:
        raise ValidationError(f"The portal cannot send with the {integration.protocol_label} protocol.")


def stored_body(upload):
    """The upload's stored file, streamed from storage for each send."""
    name, storage = upload.file.name, upload.file.storage
    return Body(open=lambda: storage.open(name, "rb"), size=upload.size_bytes, sha256=upload.sha256)


def start(upload, requested_by):
    """Begin a dispatch of an upload (inside the caller's transaction); its first attempt is
    queued once the transaction commits."""
    integration = upload.integration
    dispatch = Dispatch.objects.create(
        tenant_id=upload.tenant_id, upload=upload, max_attempts=max(1, integration.max_attempts),
        requested_by=str(requested_by)[:200],
        status=Dispatch.Status.DRY_RUN if integration.sandbox else Dispatch.Status.WAITING,
    )
    if integration.sandbox:
        _dry_run(dispatch, upload)
    else:
        transaction.on_commit(lambda: queue.send_dispatch(dispatch.pk, 1))
    return dispatch


def _dry_run(dispatch, upload):
    """Sandbox Mode: log the exact requests that would be made first, redacted; send nothing."""
    now = timezone.now()
    message = "Sandbox Mode: the file was checked and the request logged; nothing was sent."
    try:
        client = client_for(upload.integration)
        planned = client.dry_run(upload, stored_body(upload))
    except NotConfigured as exc:
        _finish_dry_run(dispatch, upload, str(exc), now)
        return
    exchanges = Exchanges(dispatch, 1, Redactor(client.secrets()))
    with requests.Session() as session:
        for request in planned:
            data = request.body if isinstance(request.body, bytes) else None
            prepared = session.prepare_request(
                requests.Request(request.method, request.url, headers=request.headers, data=data or None))
            if isinstance(request.body, Body):
                prepared.headers["Content-Length"] = str(request.body.size)
            try:
                safety.check_url(request.url)
            except safety.RefusedDestination as exc:
                exchanges.start(prepared, request.body, dry_run=True, error=exc)
                message = f"Sandbox Mode: nothing was sent; out of Sandbox Mode this call would be refused: {exc}"
            else:
                exchanges.start(prepared, request.body, dry_run=True, note="Dry run (Sandbox Mode): not sent.")
    _finish_dry_run(dispatch, upload, message, now)


def _finish_dry_run(dispatch, upload, message, now):
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.DRY_RUN, message=message[:500],
                                               started_at=now, finished_at=now)
    Dispatch.objects.filter(pk=dispatch.pk).update(finished_at=now)


def resend_ready(upload):
    """Raise ValidationError unless an upload may be sent again (called under its row lock)."""
    if upload.integration.is_inbound:
        raise ValidationError("Only an upload to an outbound integration can be resent.")
    if upload.status == Upload.Status.PURGED or not upload.file:
        raise ValidationError("This upload's file was purged; there is nothing to resend.")
    if upload.dispatches.filter(status__in=[Dispatch.Status.WAITING, Dispatch.Status.SENDING]).exists():
        raise ValidationError("This upload is still being sent; wait until it is delivered or fails.")
    can_send(upload.integration)


# --- Attempts -----------------------------------------------------------------------------


def retry_delay(failures, retry_after=None):
    """Exponential backoff with ±20 % jitter, but never sooner than the vendor asked."""
    base = getattr(settings, "PORTAL_OUTBOUND_BACKOFF_SECONDS", 10)
    cap = getattr(settings, "PORTAL_OUTBOUND_MAX_BACKOFF_SECONDS", 3600)
    backoff = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
    return min(MAX_DELAY_SECONDS, max(backoff, retry_after or 0))


def claim(dispatch_id, attempt):
    """Take attempt `attempt` of a dispatch: the dispatch with its upload and integration, or None
    when it is not this task's to make (taken, done, or its turn has not come).

    Only one task may make attempt n, and only once attempt n-1 is over; or it takes over
    attempt n from a worker that died making it (a claim not renewed for a lease).
    """
    now = timezone.now()
    params = {"id": dispatch_id, "attempt": attempt, "now": now, "waiting": Dispatch.Status.WAITING,
              "sending": Dispatch.Status.SENDING, "expired": now - timedelta(seconds=attempt_lease_seconds())}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH claimed AS ({_CLAIM} RETURNING *) {_READ % 'claimed'}", params)
        else:
            cursor.execute(_CLAIM, params)
            if cursor.rowcount != 1:
                return None
            cursor.execute(_READ % Dispatch._meta.db_table, params)
        row = cursor.fetchone()
    return None if row is None else _claimed(row)


# The claim is written by hand, once, rather than by the ORM for every file: building its
# UPDATE and the SELECT of the dispatch with its upload and integration cost about 2 ms of CPU
# per file (caches are cold after 50 ms of waiting for a vendor), 3 to 4 ms of a 64 ms cycle;
# on PostgreSQL both are one statement. What it reads is every column of the three models.
_CLAIMED_MODELS = (Dispatch, Upload, Integration)
_CLAIM = (f'UPDATE {Dispatch._meta.db_table} SET status = %(sending)s, attempts = %(attempt)s, '
          'next_attempt_at = NULL, claimed_at = %(now)s '
          'WHERE id = %(id)s AND (status = %(waiting)s AND attempts = %(attempt)s - 1 '
          'OR status = %(sending)s AND attempts = %(attempt)s AND claimed_at < %(expired)s)')
_READ = ("SELECT " + ", ".join(f'{alias}."{field.column}"' for alias, model in zip("dui", _CLAIMED_MODELS)
                               for field in model._meta.concrete_fields)
         + f" FROM %s d JOIN {Upload._meta.db_table} u ON u.id = d.upload_id"
         f" JOIN {Integration._meta.db_table} i ON i.id = u.integration_id WHERE d.id = %%(id)s")
_READ_COLUMNS = [field.get_col(model._meta.db_table)
                 for model in _CLAIMED_MODELS for field in model._meta.concrete_fields]


def _claimed(row):
    """The dispatch, its upload and its integration, from a row of _READ, its values converted
    as the ORM converts them (JSON, and SQLite's dates and booleans)."""
    compiler = Dispatch.objects.none().query.get_compiler(connection=connection)
    [row] = compiler.apply_converters([row], compiler.get_converters(_READ_COLUMNS))
    instances, start = [], 0
    for model in _CLAIMED_MODELS:
        fields = model._meta.concrete_fields
        values = row[start:start + len(fields)]
        instances.append(model.from_db(connection.alias, [field.attname for field in fields], values))
        start += len(fields)
    dispatch, upload, integration = instances
    upload.integration = integration
    dispatch.upload = upload
    return dispatch


def send(dispatch_id, attempt):
    """What the task for attempt n does: make it if it is this task's to make. Returns the task
    to queue next, as (attempt, countdown in seconds), or None when there is none.

    The next attempt when this one asked for one; or, when another worker holds attempt n, the
    same attempt again once that worker's claim would expire (it may have died with it).
    """
    with unflushed_session():
        dispatch = claim(dispatch_id, attempt)
        if dispatch is None:
            check_in = abandoned_attempt_check_in(dispatch_id, attempt)
            return None if check_in is None else (attempt, check_in)
        delay = make_attempt(dispatch, attempt)
    return None if delay is None else (attempt + 1, delay)


def run_attempt(dispatch_id, attempt):
    """Make attempt number `attempt` of a dispatch. Returns the seconds until the next attempt,
    or None when there is none (delivered, failed for good, or not ours to make)."""
    with unflushed_session():
        dispatch = claim(dispatch_id, attempt)
        return None if dispatch is None else make_attempt(dispatch, attempt)


def make_attempt(dispatch, attempt):
    """Make a claimed attempt: the client's exchanges, then the outcome (see run_attempt)."""
    dispatch_id = dispatch.pk
    upload = dispatch.upload
    started_at = timezone.now()
    exchanges = Exchanges(dispatch, attempt, Redactor(), shared_session(), answers_with_outcome=True)
    try:
        client = client_for(upload.integration)
        exchanges.redactor.add(*client.secrets())
        if not upload.file:
            raise NotConfigured("The upload's file was purged; there is nothing to send.")
        outcome = client.send(exchanges, upload, stored_body(upload), dict(dispatch.progress))
    except NotConfigured as exc:
        outcome = Outcome(False, message=str(exc), errors=[error("outbound_not_configured", exc)])
    except safety.RefusedDestination as exc:
        log.warning("Outbound call refused (dispatch %s): %s", dispatch_id, getattr(exc, "operator_detail", exc))
        outcome = Outcome(False, message=f"Refused: {exc}", errors=[error("outbound_refused", exc)])
    except (requests.Timeout, requests.ConnectionError) as exc:
        outcome = Outcome(False, retryable=True, message=f"The vendor could not be reached ({type(exc).__name__}).",
                          errors=[error("outbound_unreachable", f"{type(exc).__name__}: {exc}")])
    except requests.RequestException as exc:
        outcome = Outcome(False, message=f"{type(exc).__name__}: {exc}",
                          errors=[error("outbound_request_failed", f"{type(exc).__name__}: {exc}")])
    except Exception as exc:  # noqa: BLE001 - a bug or a broken file must not leave the dispatch "sending"
        log.error("Outbound dispatch %s attempt %s failed: %s: %s", dispatch_id, attempt, type(exc).__name__,
                  exchanges.redactor.text(exc))
        outcome = Outcome(False, message=f"The portal could not send the file ({type(exc).__name__}).",
                          errors=[error("outbound_internal_error", f"{type(exc).__name__}: {exc}")])
    return finish_attempt(dispatch, attempt, outcome, exchanges, started_at)


def finish_attempt(dispatch, attempt, outcome, exchanges, started_at):
    """Write what the attempt means for the dispatch and the upload, in one transaction."""
    now = timezone.now()
    redactor = exchanges.redactor
    errors = redactor.errors(outcome.errors)
    message = redactor.text(outcome.message)
    failures = dispatch.failures + (1 if outcome.retryable else 0)
    retrying = outcome.retryable and failures < dispatch.max_attempts
    delay = None
    started = dispatch.upload.started_at or started_at
    changes = {"failures": failures}
    if outcome.progress is not None:
        changes["progress"] = outcome.progress
    if outcome.delivered:
        changes.update(status=Dispatch.Status.DELIVERED, finished_at=now)
        upload_changes = {"status": Upload.Status.DELIVERED, "errors": [], "finished_at": now, "started_at": started,
                          "message": f"{message} (attempt {attempt})"[:500]}
    elif outcome.check_later:
        delay = max(0.0, outcome.retry_after or 0.0)
        changes.update(status=Dispatch.Status.WAITING, next_attempt_at=now + timedelta(seconds=delay))
        upload_changes = {"errors": [], "started_at": started, "message": message[:500]}
    elif retrying:
        delay = retry_delay(failures, outcome.retry_after)
        changes.update(status=Dispatch.Status.WAITING, next_attempt_at=now + timedelta(seconds=delay))
        upload_changes = {"errors": errors, "started_at": started, "message": (
            f"Attempt {failures} of {dispatch.max_attempts} failed: {message} Retrying in {delay:.0f} s.")[:500]}
    else:
        tail = f" after {failures} attempts" if outcome.retryable else ""
        changes.update(status=Dispatch.Status.FAILED, finished_at=now)
        upload_changes = {"status": Upload.Status.NOT_DELIVERED, "errors": errors, "finished_at": now,
                          "started_at": started, "message": f"Not delivered{tail}: {message}"[:500]}
    # With the last exchange's answer, in one statement; the upload unless it stopped sending
    # meanwhile (it was purged).
    update_together(
        exchanges.last_row_update(**({"retry_in_seconds": round(delay, 3)} if retrying else {})),
        (Dispatch.objects.filter(pk=dispatch.pk), changes),
        (Upload.objects.filter(pk=dispatch.upload_id, status=Upload.Status.SENDING), upload_changes),
    )
    return delay


def abandoned_attempt_check_in(dispatch_id, attempt):
    """Seconds until attempt n of a dispatch could be taken over, if another worker holds it now.

    A task whose worker died is delivered again (acks late) while the dead worker's claim
    still stands; this tells it when to look again. None when there is nothing to wait for.
    """
    claimed_at = (Dispatch.objects.filter(pk=dispatch_id, status=Dispatch.Status.SENDING, attempts=attempt)
                  .values_list("claimed_at", flat=True).first())
    if claimed_at is None:
        return None
    expires = claimed_at + timedelta(seconds=attempt_lease_seconds())
    return max(1.0, (expires - timezone.now()).total_seconds() + 1)


def stalled_dispatches():
    """Dispatches whose task was lost, as (id, attempt to run): waiting longer than
    PORTAL_REQUEUE_AFTER_SECONDS past their next attempt (or since they were created, for a
    first attempt), or sending under a claim not renewed for a lease (their worker died). Marked so
    that the next check does not send them again before another PORTAL_REQUEUE_AFTER_SECONDS."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.PORTAL_REQUEUE_AFTER_SECONDS)
    waiting = list(Dispatch.objects.filter(
        Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff),
        status=Dispatch.Status.WAITING,
    ).values_list("id", "attempts"))
    abandoned = list(Dispatch.objects.filter(
        status=Dispatch.Status.SENDING, claimed_at__lt=now - timedelta(seconds=attempt_lease_seconds()),
    ).values_list("id", "attempts"))
    Dispatch.objects.filter(id__in=[i for i, _ in waiting], status=Dispatch.Status.WAITING).update(next_attempt_at=now)
    if waiting or abandoned:
        log.warning("Sending of %d dispatch(es) stalled; queued again: %s", len(waiting) + len(abandoned),
                    sorted(i for i, _ in [*waiting, *abandoned]))
    # A waiting dispatch runs its next attempt; an abandoned one, the attempt it was making.
    return [(i, n + 1) for i, n in waiting] + abandoned



def resend(upload, actor):
    """A new series of attempts for an outbound upload, audited. ValidationError if it cannot."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().select_related("integration", "tenant").get(pk=upload.pk)
        resend_ready(upload)
        integration = upload.integration
        Upload.objects.filter(pk=upload.pk).update(
            status=Upload.Status.DRY_RUN if integration.sandbox else Upload.Status.SENDING, errors=[], message="",
            sandbox=integration.sandbox, finished_at=None)
        upload.refresh_from_db()
        started = start(upload, actor_label(actor))
        record(upload.tenant, actor, Action.UPLOAD_RESENT, f"Upload #{upload.pk}", integration,
               upload=upload.pk, dispatch=started.pk, dry_run=integration.sandbox)
    upload.refresh_from_db()
    return upload


# --- An editor's hand on a pending send ---------------------------------------------------------


def _waiting(upload):
    """The upload's dispatch that waits for its next attempt, locked; ValidationError if none does."""
    waiting = (Dispatch.objects.select_for_update().filter(upload=upload, status=Dispatch.Status.WAITING)
               .order_by("-id").first())
    if waiting is None:
        raise ValidationError("Nothing of this upload is waiting to be sent: an attempt is under way, or "
                              "the send is over.")
    return waiting


def send_now(upload, actor):
    """Make the next attempt of a waiting dispatch now rather than at its scheduled time (audited).

    The attempt still goes through claim(): the task already scheduled for it finds it taken
    and does nothing, so the attempt is made once.
    """
    with transaction.atomic():
        waiting = _waiting(upload)
        Dispatch.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
        attempt = waiting.attempts + 1
        record(upload.tenant, actor, Action.UPLOAD_SENT_NOW, f"Upload #{upload.pk}", upload.integration,
               upload=upload.pk, dispatch=waiting.pk, attempt=attempt)
        transaction.on_commit(lambda: queue.send_dispatch(waiting.pk, attempt))
    return waiting


def cancel(upload, actor):
    """Give up a waiting dispatch: no further attempt is made and the upload is not delivered (audited).

    An attempt under way cannot be called back; it is cancelled only between attempts, and a
    task that comes for a cancelled dispatch finds nothing to claim.
    """
    now = timezone.now()
    who = actor_label(actor)
    with transaction.atomic():
        waiting = _waiting(upload)
        Dispatch.objects.filter(pk=waiting.pk, status=Dispatch.Status.WAITING).update(
            status=Dispatch.Status.FAILED, next_attempt_at=None, finished_at=now)
        Upload.objects.filter(pk=upload.pk, status=Upload.Status.SENDING).update(
            status=Upload.Status.NOT_DELIVERED, finished_at=now,
            message=f"Cancelled by {who} after {waiting.attempts} attempt{'s' if waiting.attempts != 1 else ''}."[:500])
        record(upload.tenant, actor, Action.UPLOAD_CANCELLED, f"Upload #{upload.pk}", upload.integration,
               upload=upload.pk, dispatch=waiting.pk, attempts=waiting.attempts)
    return waiting
