"""The protocols of the reference documents, one package each (see integrations/registry.py)."""
