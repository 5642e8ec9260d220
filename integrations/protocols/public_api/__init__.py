"""Reference 001, the public API v3: accounts, groups and scores, both ways.

Inbound: the portal's own API under /api/v3/ (api.py): accounts and groups (directory.py),
activity and objective scores computed from metric values against the tenant's scorecard
(scoring.py, models.py), the score APIs throttled as the seed says (throttling.py); pages to
manage accounts, groups and the scorecard (views.py). An inbound integration of this protocol
imports accounts and groups from CSV files through the one intake.
Outbound: the portal reads a vendor's 001 API: accounts, groups and the scores of a period,
paced under the vendor's limits (client.py, pulls.py, tasks.py). protocol.py declares it all
to the registry.
"""
