"""Reference 004, the Import Data endpoint (POST /api/v1/source/import), both ways.

Inbound: the portal hosts the endpoint. A "REST source" is an inbound integration of this
protocol: its source_id names it, its API key (X-API-KEY) proves who sends. The request body
is checked (payload.py) before anything is stored, then its feedback entries are stored
once each (store.py, models.py). The view is in inbound.py.
Outbound: the portal sends a CSV or JSON file's rows to a vendor's import endpoint, in
batches (files.py reads the file, client.py sends it). protocol.py declares it all to the
registry, with its settings: the Source tab.
"""
