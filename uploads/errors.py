"""The errors an upload can be refused with (seed 000: a list of IDs and descriptions).

The three ids of the seed are used exactly as it spells them; each error also says the
row (1-based data row, the header not counted) and the column (field key) where known.
"""

PARSE_JSON = "import_parse_json"
PARSE_CSV = "import_parse_csv"
TRANSFORM_DATA = "import_transform_data"
# Not in the seed, which has no words for these cases; named the same way.
TOO_LARGE = "import_too_large"

MAX_ERRORS = 100  # a response lists the first 100 errors at most


def error(error_id, description, row=None, column=None):
    return {"id": error_id, "description": description, "row": row, "column": column}


class IntakeError(Exception):
    """An upload refused as a whole: nothing of it is stored.

    `errors` is the list of error dicts (first 100), `total` how many were found,
    `status` the HTTP status a view answers with (400, or 413 for too large).
    """

    def __init__(self, errors, status=400, total=None):
        errors = list(errors)
        self.total = total if total is not None else len(errors)
        self.errors = errors[:MAX_ERRORS]
        self.status = status
        super().__init__("; ".join(e["description"] for e in self.errors[:3]))
