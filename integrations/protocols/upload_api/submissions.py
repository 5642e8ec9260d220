"""Submissions: taken in through the one intake, processed into records, answered to GetResults.

- Taking one in (submit): the Name is claimed (one Dataset row per Name and integration, so
  that two requests with a new Name cannot both take it), the submission goes through
  uploads.intake.receive (so it is an Upload, in upload history, processed by the worker)
  and gets its processing token, all in one transaction.
- Processing (process, in the worker, inside the processing transaction and holding the
  integration's lock): all or nothing. Every row of Data and EventData is checked; any
  problem fails the submission, which then writes nothing and keeps its feedback. Otherwise
  the Name's records are replaced by this submission's in that one transaction: a reader
  sees the old records or the new ones, never a mix.
- GetResults (state, feedback, result_ids): what the seed's dataKey values ask for.
"""

import json

from django.db import connection, transaction

from integrations import registry
from uploads.errors import IntakeError, error
from uploads.intake import delete_stored_files, receive
from uploads.models import Account, Upload
from uploads.processing import process_upload, skip_upload

from . import datasets
from .datasets import DATA, EVENT_DATA, Feedback
from .document import NAME_TAKEN, read_stored
from .models import Dataset, EventRecord, Submission, TimeRecord

BATCH_SIZE = 2000
LOOKUP_SIZE = 900  # emails per query (SQLite allows 999 parameters)

# GetResults' dataKey=status: the seed spells the state of success "completedsuccessfully";
# the others are the portal's, in the same style.
COMPLETED = "completedsuccessfully"
STATES = {
    Upload.Status.QUEUED: "queued",
    Upload.Status.WAITING: "waiting",  # out of Sandbox Mode, behind a submission that failed
    Upload.Status.PROCESSING: "processing",
    Upload.Status.PROCESSED: COMPLETED,
    Upload.Status.FAILED: "completedwitherrors",
    Upload.Status.SKIPPED: "completedwitherrors",  # failed, then replaced or skipped
    Upload.Status.PURGED: "purged",
}
DATA_KEYS = ("status", "feedback", "tableofresultids")


class NoOutput(Exception):
    """GetResults asked for output a submission does not have (yet)."""

    def __init__(self, error_id, description):
        super().__init__(description)
        self.error_id = error_id
        self.description = description


# --- Taking a submission in -----------------------------------------------------------------


def submit(integration, submitted, sender, client_id=""):
    """A checked submission (document.read_request): claimed by Name, stored through the one
    intake, given its processing token. `sender` (the client's principal, or a user) is who
    sent it, in upload history and the audit trail. Raises IntakeError when the Name is taken
    and Overwrite is not true, or when the intake refuses it."""
    with transaction.atomic():
        dataset = _claim(integration, submitted)
        upload = receive(integration, submitted.stored(), channel=Upload.Channel.UPLOAD_DATA,
                         content_type="application/json", submitted_via=str(sender),
                         filename=f"{submitted.name}.json")
        try:
            submission = Submission.objects.create(
                tenant_id=integration.tenant_id, integration=integration, upload=upload, name=submitted.name,
                overwrite=submitted.overwrite, dataset=dataset, client_id=client_id)
            if submitted.overwrite:
                _release_failed(dataset, submission, sender)
        except BaseException:
            delete_stored_files(upload)  # nothing stored on failure: the file goes too
            raise
    return submission


def process_now(submission):
    """Process a submission in this process, now (the demo: its records are there at once; the
    queued task then finds nothing left to do)."""
    process_upload(submission.upload_id)


def _claim(integration, submitted):
    """The Name's dataset; IntakeError when another submission has the Name and Overwrite is not true."""
    dataset, created = Dataset.objects.get_or_create(
        integration=integration, name=submitted.name, defaults={"tenant_id": integration.tenant_id})
    if not created and not submitted.overwrite and dataset.submissions.exists():
        raise IntakeError([error(NAME_TAKEN, f"A submission named “{submitted.name}” exists already. Send it with "
                                             "Overwrite true to replace its records, or choose another Name.",
                                 column="Name")])
    return dataset


def _release_failed(dataset, submission, sender):
    """A submission sent again under the Name of one that failed replaces it: out of Sandbox Mode the
    failed one would hold every later submission, so it is skipped (audited as the client's doing)."""
    failed = Upload.objects.filter(upload_api_submission__dataset=dataset, status=Upload.Status.FAILED,
                                   sandbox=False).exclude(pk=submission.upload_id)
    for upload in failed.select_related("tenant", "integration"):
        skip_upload(upload, sender)


# --- Processing -----------------------------------------------------------------------------


def process(upload, file, unknown_email):
    """Turn a stored submission into records (see the module docstring); registry.Processed."""
    submitted = read_stored(file.read())
    submission = Submission.objects.filter(upload=upload).select_related("dataset").first()
    if submission is None:  # sent from the upload form or the REST API: it gets its token now
        submission = _register_file(upload, submitted)
    feedback = Feedback()
    data = datasets.read(DATA, submitted.data, feedback)
    events = (datasets.read(EVENT_DATA, submitted.event_data, feedback, required=False)
              if submitted.event_data.strip() else datasets.empty_rows(EVENT_DATA))
    accounts = _accounts(upload.tenant_id, [rows for rows in (data, events) if rows is not None], unknown_email,
                         feedback) if not feedback else {}
    if feedback:
        raise IntakeError(feedback.errors(), total=feedback.total)
    return _write(submission, data, events, accounts)


def _register_file(upload, submitted):
    """A submission that came as a file: its Name is claimed when it is processed."""
    integration = upload.integration
    try:
        dataset = _claim(integration, submitted)
    except IntakeError as exc:
        raise IntakeError([{**item, "column": "Name"} for item in exc.errors]) from None
    return Submission.objects.create(tenant_id=upload.tenant_id, integration=integration, upload=upload,
                                     name=submitted.name, overwrite=submitted.overwrite, dataset=dataset)


def _accounts(tenant_id, all_rows, unknown_email, feedback):
    """Reference → account id, for the References that are emails (the account of that email in
    the tenant, created when missing unless the settings say to refuse it). Any other
    Reference (a user id, a name) is kept as text on its record, with no account."""
    emails = set()
    for rows in all_rows:
        references = rows.frame["reference"]
        emails.update(references[references.str.contains("@", regex=False)].str.lower())
    emails = sorted(emails)
    ids = _account_ids(tenant_id, emails)
    missing = [email for email in emails if email not in ids]
    if missing and unknown_email == "reject":
        unknown = set(missing)
        for layout, rows in zip((DATA, EVENT_DATA), all_rows):
            lowered = rows.frame["reference"].str.lower()
            feedback.add_rows(layout, lowered.isin(unknown), "Reference", lambda i, lowered=lowered: (
                f"No account in this organisation has the email {lowered.iat[i]}."))
        return {}
    if missing:
        Account.create_missing(tenant_id, missing)
        ids.update(_account_ids(tenant_id, missing))
    return ids


def _account_ids(tenant_id, emails):
    ids = {}
    for start in range(0, len(emails), LOOKUP_SIZE):
        ids.update(Account.objects.filter(tenant_id=tenant_id, email__in=emails[start:start + LOOKUP_SIZE])
                   .values_list("email", "id"))
    return ids


def _write(submission, data, events, accounts):
    """Replace the Name's records with this submission's, unless a later one's are there already."""
    dataset = submission.dataset
    if dataset is None:  # its dataset went with a purge; the Name is free again
        dataset, _ = Dataset.objects.get_or_create(integration_id=submission.integration_id, name=submission.name,
                                                   defaults={"tenant_id": submission.tenant_id})
        Submission.objects.filter(pk=submission.pk).update(dataset=dataset)
    dataset = Dataset.objects.select_for_update(of=("self",)).select_related("live").get(pk=dataset.pk)
    live, rows = dataset.live, len(data) + len(events)
    if live is not None and live.pk > submission.pk:
        # Processed out of order (Sandbox Mode does not keep arrival order): the later one stands.
        Submission.objects.filter(pk=submission.pk).update(replaced_by=live)
        return registry.Processed(records=rows, message=(
            f"“{submission.name}”: a later submission of this Name was processed first; these rows were not "
            "written."))
    if live is not None:
        TimeRecord.objects.filter(submission=live).delete()
        EventRecord.objects.filter(submission=live).delete()
        if live.pk != submission.pk:
            Submission.objects.filter(pk=live.pk).update(replaced_by=submission)
    _insert(TimeRecord, data, accounts, submission)
    _insert(EventRecord, events, accounts, submission)
    dataset.live = submission
    dataset.save(update_fields=["live", "updated_at"])
    replaced = f"; they replace those of submission {live.token}" if live is not None and live != submission else ""
    return registry.Processed(records=rows, values_written=rows, message=(
        f"“{submission.name}”: {_count(len(data), 'time record')}, {_count(len(events), 'event record')}{replaced}."))


def _insert(model, rows, accounts, submission):
    """Insert a dataset's records; returns how many.

    One INSERT per batch of rows, their values laid out by pandas: bulk_create spent 20 of the 24
    seconds of a 272,000-row submission preparing each field of each model instance.
    """
    frame = rows.frame
    if frame.empty:
        return 0
    references = frame["reference"]
    account_ids = references.str.lower().map(accounts)
    values = {
        "tenant": [submission.tenant_id] * len(frame), "integration": [submission.integration_id] * len(frame),
        "submission": [submission.pk] * len(frame), "row": frame.index.tolist(), "reference": references.tolist(),
        "account": [int(i) if i == i else None for i in account_ids.tolist()],  # NaN: no account
        "start": _moments(frame["start"]), "end": _moments(frame["end"]),
    }
    if model is EventRecord:
        values.update(description=frame["description"].tolist(),
                      time_reference=frame["time_reference"].astype(int).tolist())
    quote = connection.ops.quote_name
    columns = [quote(model._meta.get_field(name).column) for name in values]
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))})")
    table = list(zip(*values.values()))
    with connection.cursor() as cursor:
        for start in range(0, len(table), BATCH_SIZE):
            cursor.executemany(sql, table[start:start + BATCH_SIZE])
    return len(table)


def _moments(column):
    """Datetimes (read as UTC) as the database stores them: SQLite keeps Django's naive UTC text,
    the others take aware datetimes."""
    if connection.vendor == "sqlite":
        return column.dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    return column.dt.tz_localize("UTC").dt.to_pydatetime().tolist()


def _count(number, noun):
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def purge(integration):
    """Purge All Data: the records go, and so do the Names (sending one again needs no Overwrite)."""
    deleted, _ = TimeRecord.objects.filter(integration=integration).delete()
    events, _ = EventRecord.objects.filter(integration=integration).delete()
    Dataset.objects.filter(integration=integration).delete()
    return deleted + events


def record_count(integration):
    return (TimeRecord.objects.filter(integration=integration).count()
            + EventRecord.objects.filter(integration=integration).count())


# --- GetResults -----------------------------------------------------------------------------


def find(integration, token):
    """The integration's submission with this processing token, or None (also for another's)."""
    return (Submission.objects.select_related("upload").filter(integration=integration, token=token.strip().lower())
            .first())


def state(submission):
    return STATES.get(submission.upload.status, submission.upload.status)


def feedback(submission):
    """The row-level problems of a submission that completed with errors ([] when it had none)."""
    current = state(submission)
    if current == COMPLETED:
        return []
    if current == STATES[Upload.Status.FAILED]:
        return datasets.feedback_of(submission.upload.errors)
    raise _not_done(current)


def result_ids(submission):
    """Per Data row, then per EventData row, the id of the record it became: an iterator, read in batches."""
    current = state(submission)
    if current != COMPLETED:
        if current == STATES[Upload.Status.FAILED]:
            raise NoOutput("completed_with_errors", "This submission completed with errors and produced no "
                                                    "records; ask for dataKey=feedback.")
        raise _not_done(current)
    if submission.replaced_by_id is not None:
        raise NoOutput("replaced", "The records of this submission were replaced by a later submission of the same "
                                   "Name; ask with that submission's processing token.")
    return _ids(submission)


def _ids(submission):
    for dataset, model in ((DATA.name, TimeRecord), (EVENT_DATA.name, EventRecord)):
        rows = model.objects.filter(submission=submission).order_by("row").values_list("row", "id")
        for row, record_id in rows.iterator(chunk_size=BATCH_SIZE):
            yield {"dataset": dataset, "row": row, "id": record_id}


def _not_done(current):
    if current == "purged":
        return NoOutput("purged", "This submission's records were purged (Purge All Data).")
    return NoOutput("not_completed", f"Processing has not completed (status: {current}); ask for dataKey=status "
                                     f"until it is {COMPLETED}.")


def stream_json_list(items):
    """A JSON list written item by item, for an answer too long to build in memory."""
    yield "["
    for number, item in enumerate(items):
        yield ("," if number else "") + json.dumps(item)
    yield "]"

