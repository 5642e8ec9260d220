"""Vendor secrets, encrypted at rest with Fernet (the `cryptography` package).

The key comes from settings.PORTAL_SECRETS_KEY. Secrets go in as a dict and come out as a
dict only in the code that calls the vendor; nothing else ever reads them back.
"""

import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet():
    return Fernet(settings.PORTAL_SECRETS_KEY.encode())


def encrypt(secrets_dict):
    return _fernet().encrypt(json.dumps(secrets_dict).encode()).decode()


def decrypt(ciphertext):
    if not ciphertext:
        return {}
    try:
        return json.loads(_fernet().decrypt(ciphertext.encode()))
    except InvalidToken as exc:  # the key changed: say so, without the ciphertext
        raise ValueError("Stored vendor credentials cannot be decrypted with the current PORTAL_SECRETS_KEY") from exc
