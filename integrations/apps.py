from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self):
        # The protocols are known from the start: their audit actions' labels, for one. (Imported
        # here, as Django wants it: the registry reads models, not loaded when this module is.)
        from . import registry

        registry.all_protocols()
