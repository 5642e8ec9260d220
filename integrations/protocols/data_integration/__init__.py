"""Seed 000, "How do I upload data for an API integration?", both ways.

Inbound: the portal is the receiving platform: POST /api/v1/data/<data_type>/ (inbound.py),
files checked (parsing.py) and processed into metric values (values.py).
Outbound: the portal POSTs a file to a vendor's endpoint (client.py).
protocol.py declares it to the registry, with its settings: the Data Format.
"""
