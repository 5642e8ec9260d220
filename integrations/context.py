"""Template context that the protocols provide to every page."""

from django.urls import reverse

from . import registry


def protocol_pages(request):
    """The protocols' pages of the tenant in the URL, for the main navigation."""
    tenant = getattr(request, "tenant", None)
    if tenant is None:
        return {}
    match = request.resolver_match
    here = match.url_name if match else ""
    return {"protocol_pages": [
        {"label": label, "url": reverse(name, args=[tenant.slug]), "current": (here or "").startswith(prefixes)}
        for label, name, prefixes in registry.tenant_pages()]}
