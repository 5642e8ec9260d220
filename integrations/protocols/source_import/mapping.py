"""An outbound integration's settings as its check and client read them."""

from dataclasses import dataclass

from .entries import DATE_FORMAT

DEFAULTS = {"date_key": "date", "name_key": "name", "content_key": "content", "date_format": DATE_FORMAT,
            "batch_size": 500}
MAX_BATCH_SIZE = 5000


@dataclass(frozen=True)
class Mapping:
    """Which column of a file holds each part of an entry, how its dates are written, and how
    many entries go in one request."""

    source_id: str
    date_key: str
    name_key: str
    content_key: str
    date_format: str
    batch_size: int

    @classmethod
    def of(cls, integration):
        settings = {**DEFAULTS, **{k: v for k, v in (integration.settings or {}).items() if v not in (None, "")}}
        return cls(source_id=integration.key, date_key=settings["date_key"], name_key=settings["name_key"],
                   content_key=settings["content_key"], date_format=settings["date_format"],
                   batch_size=int(settings["batch_size"]))

    @property
    def columns(self):
        """The file's columns, by the entry field each one becomes."""
        return {"date": self.date_key, "name": self.name_key, "content": self.content_key}
