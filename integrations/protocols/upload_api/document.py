"""An UploadData request's body, checked whole before anything of it is stored, and the
submission the portal stores in its place: the same JSON without Key and Username, so that
no secret is ever written to storage.

A request that is itself wrong (not JSON, a required field missing, a field of the wrong
type, a Key that is not this integration's) is refused with every such problem, each naming
its field. What is wrong inside Data or EventData is not the request's fault: the rows are
checked when the submission is processed, and come back through GetResults' feedback.
"""

import json
from dataclasses import dataclass

from uploads.errors import IntakeError, error

NAME_LIMIT = 200
SEED_FIELDS = ("Name", "Data", "EventData", "Username", "Key", "Overwrite")

# Error ids of a refused request (the seed names none).
NOT_JSON = "request_not_json"
TOO_LARGE = "request_too_large"
REQUIRED = "field_required"
INVALID = "field_invalid"
KEY_INVALID = "key_invalid"
USERNAME_MISMATCH = "username_mismatch"
NAME_TAKEN = "name_taken"


@dataclass(frozen=True)
class Submitted:
    """What a submission says: its Name, its two CSV datasets and whether it may replace a Name's records."""

    name: str
    data: str
    event_data: str
    overwrite: bool

    def stored(self):
        """The submission as the portal stores it (no Key, no Username)."""
        # Compact, so that it is never larger than the request it came in (the same size cap).
        return json.dumps({"Name": self.name, "Data": self.data, "EventData": self.event_data,
                           "Overwrite": self.overwrite}, ensure_ascii=False, separators=(",", ":")).encode()


def refusal(field, error_id, description):
    return IntakeError([error(error_id, description, column=field)])


def read_request(data, client_id, is_api_key):
    """The Submitted of an UploadData body, or IntakeError (400) listing what is wrong, field by field.

    `is_api_key(key)` says whether Key is this integration's API key; Username, when sent, must
    be the client id of the bearer token.
    """
    body = _json_object(data)
    problems = _problems(body)
    key = body.get("Key")
    if key is None or key == "":
        problems.append(error(REQUIRED, "Key is required: the integration's API key (Credentials tab).", column="Key"))
    elif not isinstance(key, str):
        problems.append(error(INVALID, "Key must be a string: the integration's API key.", column="Key"))
    elif not is_api_key(key.strip()):
        problems.append(error(KEY_INVALID, "Key is not the API key of this client's integration (or it was "
                                           "regenerated); see the integration's Credentials tab.", column="Key"))
    username = body.get("Username")
    if username not in (None, "") and (not isinstance(username, str) or username.strip() != client_id):
        problems.append(error(USERNAME_MISMATCH, "Username, when sent, must be your client id: the one the bearer "
                                                 "token was issued to.", column="Username"))
    if problems:
        raise IntakeError(problems)
    return _submitted(body)


def read_stored(data):
    """The Submitted of a stored submission, or of a JSON file sent from the upload form (which
    must leave Key out: the file is stored as it is). IntakeError (400) when it is wrong."""
    body = _json_object(data)
    problems = _problems(body)
    if body.get("Key") not in (None, ""):
        problems.append(error(INVALID, "Leave Key out of a file sent from the portal: a signed-in editor needs "
                                       "none, and the file is stored as it is.", column="Key"))
    if problems:
        raise IntakeError(problems)
    return _submitted(body)


def _json_object(data):
    if not data.strip():
        raise refusal("body", NOT_JSON, "The request body is empty; send the submission as a JSON object "
                                        f"({', '.join(SEED_FIELDS)}).")
    try:
        body = json.loads(data)  # bytes: UTF-8 with or without a BOM, or UTF-16/32
    except (ValueError, UnicodeDecodeError) as exc:
        raise refusal("body", NOT_JSON, f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise refusal("body", NOT_JSON, "The request body is nested too deeply to be read.") from None
    if not isinstance(body, dict):
        raise refusal("body", NOT_JSON, f"The request body must be a JSON object ({', '.join(SEED_FIELDS)}).")
    return body


def _problems(body):
    problems = []
    name = body.get("Name")
    if name is None or isinstance(name, str) and not name.strip():
        problems.append(error(REQUIRED, "Name is required: a name for this submission.", column="Name"))
    elif not isinstance(name, str):
        problems.append(error(INVALID, "Name must be a string.", column="Name"))
    elif len(name.strip()) > NAME_LIMIT:
        problems.append(error(INVALID, f"Name may be {NAME_LIMIT} characters at most.", column="Name"))
    for field, required in (("Data", True), ("EventData", False)):
        value = body.get(field)
        if value is None or value == "":
            if required:
                problems.append(error(REQUIRED, "Data is required: the primary dataset in CSV format.", column=field))
        elif not isinstance(value, str):
            problems.append(error(INVALID, f"{field} must be a string holding CSV.", column=field))
        elif required and not value.strip():
            problems.append(error(REQUIRED, "Data is blank: send the primary dataset in CSV format.", column=field))
    if _overwrite(body.get("Overwrite")) is None:
        problems.append(error(INVALID, 'Overwrite must be true or false (or the strings "true" and "false").',
                              column="Overwrite"))
    return problems


def _overwrite(value):
    """true/false, or the strings "true"/"false" as in the seed's example; absent or null is false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _submitted(body):
    return Submitted(name=body["Name"].strip(), data=body["Data"], event_data=body.get("EventData") or "",
                     overwrite=_overwrite(body.get("Overwrite")))
