from django.apps import AppConfig


class SourceImportConfig(AppConfig):
    name = "integrations.protocols.source_import"
    label = "source_import"
    verbose_name = "Import Data (REST sources)"
    protocol = "integrations.protocols.source_import.protocol.SourceImport"
