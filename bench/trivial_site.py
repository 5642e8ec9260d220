"""The small-intake benchmark's settings: the portal's own, with bench/trivial_urls.py as URLconf
(every URL of the portal, plus a trivial JSON view)."""

from portal.settings import *  # noqa: F403 — the portal's settings, one line changed

ROOT_URLCONF = "trivial_urls"
