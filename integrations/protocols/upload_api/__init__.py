"""Reference 002, the Upload API (OAuth 2.0 client credentials, UploadData, GetResults), both ways.

Inbound: the portal hosts the API. An inbound integration of this protocol has an OAuth
client (django-oauth-toolkit's Application, linked by UploadApiClient: the client names the
integration, and so the tenant) and an API key (the "Key" of every request). inbound.py has
the token endpoint and the two API views; document.py checks a request's body; datasets.py
reads the Data and EventData CSV (both ways); submissions.py turns a submission into time
and event records (all or nothing, Overwrite by Name) and answers GetResults.
Outbound: the portal calls a vendor's Upload API (client.py): token, UploadData, then
GetResults polled by the delivery engine's "check again later".
protocol.py declares it all to the registry, with its settings and its demo.
"""
