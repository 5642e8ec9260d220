"""Accounts and groups: the people scores are about, and the teams they are in.

The pages and the admin edit one account or group at a time (forms.py); a CSV file imports
many through the one intake (an inbound integration of this protocol): read_directory()
checks the whole file before anything is stored, import_directory() applies it while the
upload is processed.

The file has a header row and one row per account:

    email,username,manager,groups,manages
    jason@yourcompany.com,jason,maria@yourcompany.com,East;Inbound,
    maria@yourcompany.com,maria,,East,East

Only `email` is required. `username` (blank: kept, or made from the email for a new account);
`manager` (the manager's email or username, in the file or already in the tenant; blank: no
manager); `groups` (the groups the account is a member of, names separated by ";"; blank:
none); `manages` (the groups the account manages). A column that is absent leaves that part
of existing accounts as it is. Groups named for the first time are created.
"""

import io

import pandas as pd
from django.db import transaction
from django.db.models import Q

from uploads.errors import PARSE_CSV, TRANSFORM_DATA, IntakeError, error
from uploads.models import USERNAME_PATTERN, Account, Group

COLUMNS = ("email", "username", "manager", "groups", "manages")
LIST_SEPARATOR = ";"
MAX_GROUP_NAME = 200


def read_directory(data):
    """The file as a DataFrame of text columns (lower-cased emails), or IntakeError listing
    every problem that needs no database to find."""
    if not data.strip():
        raise IntakeError([error(PARSE_CSV, "The file is empty.")])
    try:
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except UnicodeDecodeError:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="cp1252")
    except pd.errors.EmptyDataError:
        raise IntakeError([error(PARSE_CSV, "The CSV file has no header row.")]) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IntakeError([error(PARSE_CSV, f"The CSV file is improperly formatted: {str(exc).strip()[:300]}")]) \
            from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if "email" not in frame.columns:
        raise IntakeError([error(TRANSFORM_DATA, "The file has no “email” column.", column="email")])
    if len(frame) == 0:
        raise IntakeError([error(TRANSFORM_DATA, "The file holds no rows.")])
    frame = frame[[c for c in COLUMNS if c in frame.columns]].apply(lambda column: column.str.strip())
    frame["email"] = frame["email"].str.lower()

    problems = []
    rows = pd.Series(range(1, len(frame) + 1), index=frame.index)
    for row in rows[~frame["email"].str.fullmatch(r"[^@\s]+@[^@\s]+")]:
        problems.append(error(TRANSFORM_DATA, "expected an email address", row, "email"))
    for row in rows[frame["email"].duplicated(keep="first")]:
        problems.append(error(TRANSFORM_DATA, "this email appears on an earlier row", row, "email"))
    if "username" in frame:
        named = frame["username"] != ""
        for row in rows[named & ~frame["username"].str.fullmatch(USERNAME_PATTERN)]:
            problems.append(error(TRANSFORM_DATA, "a username has letters, digits and @ . + - _ only", row,
                                  "username"))
        for row in rows[named & (frame["username"].str.len() > 150)]:
            problems.append(error(TRANSFORM_DATA, "a username has at most 150 characters", row, "username"))
        lowered = frame["username"].str.lower()
        for row in rows[named & lowered.duplicated(keep="first")]:
            problems.append(error(TRANSFORM_DATA, "this username appears on an earlier row", row, "username"))
    for column in ("groups", "manages"):
        if column in frame:
            too_long = frame[column].map(lambda cell: any(len(n) > MAX_GROUP_NAME for n in group_names(cell)))
            for row in rows[too_long]:
                problems.append(error(TRANSFORM_DATA, f"a group name has at most {MAX_GROUP_NAME} characters",
                                      row, column))
    if problems:
        problems.sort(key=lambda item: item["row"])
        raise IntakeError(problems, total=len(problems))
    return frame


def group_names(cell):
    return [name.strip() for name in (cell or "").split(LIST_SEPARATOR) if name.strip()]


def check_directory(tenant_id, frame):
    """What only the tenant's accounts can tell: usernames taken by someone else, managers that
    are nobody, chains of managers that go round. Raises IntakeError."""
    existing = list(Account.objects.filter(tenant_id=tenant_id).values("id", "email", "username", "manager_id"))
    plan = _plan(existing, frame)
    problems = []
    rows = {email: i + 1 for i, email in enumerate(frame["email"])}
    if "username" in frame:
        owner = {a["username"].lower(): a["email"] for a in existing if a["username"]}
        for email, username in zip(frame["email"], frame["username"]):
            holder = owner.get(username.lower()) if username else None
            if holder and holder != email and holder not in plan["renamed"]:
                problems.append(error(TRANSFORM_DATA, f"the username “{username}” belongs to {holder}",
                                      rows[email], "username"))
    if "manager" in frame:
        for email, manager in zip(frame["email"], frame["manager"]):
            if manager and plan["resolve"](manager) is None:
                problems.append(error(TRANSFORM_DATA, f"no account has the email or username “{manager}”",
                                      rows[email], "manager"))
            elif manager and plan["resolve"](manager) == email:
                problems.append(error(TRANSFORM_DATA, "an account cannot be its own manager", rows[email], "manager"))
    if not problems:
        for email in _in_cycles(plan["managers"]):
            if email in rows:
                problems.append(error(TRANSFORM_DATA, "this manager chain goes round: someone would manage their "
                                                      "own manager", rows[email], "manager"))
    if problems:
        problems.sort(key=lambda item: item["row"])
        raise IntakeError(problems, total=len(problems))
    return plan


def _plan(existing, frame):
    """Who is who once the file is applied: emails by username, each email's manager."""
    usernames = {a["email"]: a["username"] for a in existing}
    renamed = set()
    if "username" in frame:
        for email, username in zip(frame["email"], frame["username"]):
            if username and usernames.get(email) != username:
                usernames[email] = username
                renamed.add(email)
    known = set(usernames) | set(frame["email"])
    by_username = {name.lower(): email for email, name in usernames.items() if name}
    email_of = {a["id"]: a["email"] for a in existing}
    managers = {a["email"]: email_of.get(a["manager_id"]) for a in existing}

    def resolve(reference):
        reference = reference.strip()
        if reference.lower() in known:
            return reference.lower()
        return by_username.get(reference.lower())

    if "manager" in frame:
        for email, manager in zip(frame["email"], frame["manager"]):
            managers[email] = resolve(manager) if manager else None
    # A renamed account frees its old username for another row (checked above).
    renamed_from = {a["email"] for a in existing if a["email"] in renamed}
    return {"resolve": resolve, "managers": managers, "renamed": renamed_from}


def _in_cycles(managers):
    """The emails that are part of a chain of managers that goes round."""
    state, found = {}, set()
    for start in managers:
        path, node = [], start
        while node is not None and state.get(node) is None:
            state[node] = "open"
            path.append(node)
            node = managers.get(node)
        if node is not None and state.get(node) == "open":
            found.update(path[path.index(node):])
        for visited in path:
            state[visited] = "done"
    return found


@transaction.atomic
def import_directory(tenant_id, frame):
    """Apply a checked file: returns counts. Runs in the processing transaction (the intake's
    integration lock keeps two imports of one integration apart)."""
    Account.lock_for_new(tenant_id)  # and apart from processing that creates accounts of the tenant
    plan = check_directory(tenant_id, frame)  # the tenant may have changed since the file arrived
    emails = list(frame["email"])
    accounts = {a.email: a for a in Account.objects.filter(tenant_id=tenant_id)}
    new = [email for email in emails if email not in accounts]
    given = dict(zip(frame["email"], frame["username"])) if "username" in frame else {}

    # Usernames: clear the ones that move first, so that two accounts can swap theirs.
    moving = [accounts[email] for email in emails if email in accounts and given.get(email)
              and given[email] != accounts[email].username]
    for account in moving:
        account.username = f"~{account.pk}"
    Account.objects.bulk_update(moving, ["username"])
    taken = {a.username.lower() for a in accounts.values() if a.username} | {n.lower() for n in given.values() if n}
    created = []
    for email in new:
        username = given.get(email) or Account.free_username(tenant_id, email, taken=taken)
        taken.add(username.lower())
        created.append(Account(tenant_id=tenant_id, email=email, username=username))
    Account.objects.bulk_create(created, batch_size=1000)
    accounts = {a.email: a for a in Account.objects.filter(tenant_id=tenant_id)}
    for account in moving:
        account.username = given[account.email]
        accounts[account.email].username = given[account.email]
    changed = [accounts[email] for email in emails if email in accounts]

    if "manager" in frame:
        for email in emails:
            manager_email = plan["managers"].get(email)
            accounts[email].manager_id = accounts[manager_email].pk if manager_email else None
    Account.objects.bulk_update(changed, ["username", "manager"], batch_size=1000)

    groups_created = 0
    for column, through, side in (("groups", Account.groups.through, "account"),
                                  ("manages", Group.managers.through, "account")):
        if column not in frame:
            continue
        wanted = {email: group_names(cell) for email, cell in zip(frame["email"], frame[column])}
        names = sorted({name for names in wanted.values() for name in names})
        existing_groups = {g.name: g for g in Group.objects.filter(tenant_id=tenant_id, name__in=names)}
        missing = [Group(tenant_id=tenant_id, name=name) for name in names if name not in existing_groups]
        Group.objects.bulk_create(missing)
        groups_created += len(missing)
        by_name = {g.name: g.pk for g in Group.objects.filter(tenant_id=tenant_id, name__in=names)}
        account_ids = [accounts[email].pk for email in emails]
        through.objects.filter(**{f"{side}_id__in": account_ids}).delete()
        through.objects.bulk_create([through(**{f"{side}_id": accounts[email].pk, "group_id": by_name[name]})
                                     for email, names in wanted.items() for name in names], batch_size=1000)
    return {"accounts": len(emails), "created": len(created), "groups_created": groups_created}


def search_accounts(accounts, text):
    """Accounts whose email or username contains the text (case-insensitive)."""
    text = (text or "").strip()
    if not text:
        return accounts
    return accounts.filter(Q(email__icontains=text) | Q(username__icontains=text))
