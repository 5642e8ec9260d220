from django.apps import AppConfig


class PublicApiConfig(AppConfig):
    name = "integrations.protocols.public_api"
    label = "public_api"
    verbose_name = "Public API v3 (accounts, groups, scores)"
    protocol = "integrations.protocols.public_api.protocol.PublicApi"
