"""Reference 003, the File Upload API (a token, a time-limited URL, a PUT), both ways.

Inbound: tenants' systems ask for permission to send a file (step 1, `inbound.py`) with a
File Upload API token (the API Tokens page, `views.py`), and PUT the file to the URL they are
given (step 2): the portal's own signed URL, streamed to storage (`receiving.py`), or an S3
presigned URL when PORTAL_S3_BUCKET is set, found by a periodic check (`s3.py`). Each arrival
is recorded once (`arrivals.py`): an upload, an audit event and a notification. A file sent
with a token linked to a data integration (reference 000) is processed into its values in
chunks (`streaming.py`).
Outbound: the portal asks a vendor for a URL and streams the PUT to it (`client.py`).
`protocol.py` declares it all to the registry.
"""
