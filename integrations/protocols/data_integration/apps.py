from django.apps import AppConfig


class DataIntegrationConfig(AppConfig):
    name = "integrations.protocols.data_integration"
    label = "data_integration"
    verbose_name = "Data integration"
    protocol = "integrations.protocols.data_integration.protocol.DataIntegration"
