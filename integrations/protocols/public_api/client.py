"""Reference 001's client side: what the portal asks a vendor's public API, and what its answers mean.

The vendor's base URL is the integration's endpoint, e.g. https://acme.example.com/api/v3/
(a bare https://acme.example.com means its /api/v3/). Every request is a GET with
`Authorization: Token <token>` and `Content-Type: application/json`, as the seed's example;
lists come in pages ({"count", "next", "previous", "results"}) and the client follows "next",
but only on the vendor's own host, where its token may go.
"""

from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from uploads.delivery.client import OutboundRequest

from .forms import DEFAULT_PAGE_SIZE

# Each score API's limits, as the seed states them: the portal stays within them.
SCORE_LIMITS = ((30, 60), (1000, 86400))
PATHS = {"accounts": "account", "groups": "group", "activity": "activity-score", "objective": "objective-score"}
SCORE_STAGES = ("activity", "objective")


class VendorAnswerError(Exception):
    """An answer the client cannot read as the seed's: the pull fails with this message."""


def api_base(endpoint_url):
    """The vendor's /api/v3/ URL, with its trailing slash."""
    parts = urlsplit(endpoint_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/api/v3"):
        path += "/api/v3"
    return f"{parts.scheme}://{parts.netloc}{path}/"


@dataclass
class Page:
    results: list
    next_url: str


class VendorApi:
    def __init__(self, integration, credentials):
        self.integration = integration
        self.token = credentials.get("api_token", "")
        self.base = api_base(integration.endpoint_url)
        self.page_size = int((integration.settings or {}).get("page_size") or DEFAULT_PAGE_SIZE)

    def secrets(self):
        return [self.token] if self.token else []

    def stage_url(self, stage):
        """Where a stage's API is (what its calls start with, for pacing)."""
        return urljoin(self.base, PATHS[stage])

    def first_url(self, stage, pull):
        query = {"limit": self.page_size}
        if stage in SCORE_STAGES:
            query = {"period": pull.period, "date": pull.period_start.isoformat(), **query}
        return f"{self.stage_url(stage)}?{urlencode(query)}"

    def request(self, url):
        return OutboundRequest("GET", url, headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json", "Accept": "application/json"})

    def read_page(self, answer, url):
        """The records of a 200 answer and the URL of the next page ("" at the last one)."""
        data = answer.json()
        if isinstance(data, list):  # an API that does not page answers a bare list
            return Page(data, "")
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise VendorAnswerError(f"The vendor's answer to {urlsplit(url).path} is not a page of records: "
                                    f"{answer.text[:200]!r}")
        next_url = data.get("next") or ""
        if next_url:
            next_url = urljoin(url, next_url)
            here, there = urlsplit(url), urlsplit(next_url)
            if (here.scheme, here.netloc) != (there.scheme, there.netloc):
                raise VendorAnswerError(f"The vendor's next page is on another host ({there.netloc}); the portal "
                                        "does not send its token there.")
        return Page([item for item in data["results"] if isinstance(item, dict)], next_url)


def text(value, limit):
    return "" if value is None else str(value)[:limit]


def account_of(record):
    """A vendor's account record as the portal keeps it."""
    groups = record.get("groups") or []
    return {"vendor_id": text(record.get("id"), 100), "username": text(record.get("username"), 150),
            "email": text(record.get("email"), 254), "manager": text(record.get("manager"), 150),
            "groups": [str(g) for g in groups] if isinstance(groups, list) else []}


def group_of(record):
    def names(value):
        return [str(v) for v in value] if isinstance(value, list) else []

    return {"group_id": text(record.get("group_id") or record.get("id"), 100), "name": text(record.get("name"), 200),
            "members": names(record.get("members")), "managers": names(record.get("managers"))}


def score_of(record):
    score = record.get("score")
    try:
        score = None if score is None else float(score)
    except (TypeError, ValueError):
        score = None
    return {"entity_type": text(record.get("entity_type") or "individual", 20),
            "entity_id": text(record.get("entity_id") or record.get("EntityID"), 150),
            "name": text(record.get("name"), 254), "score": score}
