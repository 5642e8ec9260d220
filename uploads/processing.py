"""Processing inbound uploads into metric values (filled in by the intake work)."""


def release_waiting_uploads(integration_id):
    """Called when an integration leaves Sandbox Mode: queue what waited, in arrival order."""
    return 0
