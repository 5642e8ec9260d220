"""Which vendor URLs may be saved and called: the checks that need no network.

check_url(url) runs when a URL is saved (forms, the REST API, the admin: Integration.clean)
and again before each request. It looks only at what the URL itself says (no DNS, so saving
never depends on it): it refuses anything two URL parsers could read differently
(backslashes, userinfo, escapes or odd characters in the host, numeric hosts that are not
plain dotted quads), other schemes than http(s), plain http except to allowed networks, and
literal IP addresses that are not public. Where a name resolves to is judged on the address
actually connected, at connect time (uploads.delivery.safety).

A refusal is RefusedDestination: its message is for the tenant, its operator_detail (the
resolved address, the setting to change) for the server log.
"""

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

import requests
from django.conf import settings

SETTING = "PORTAL_OUTBOUND_ALLOWED_NETWORKS"

PUBLIC_ONLY = "the portal only calls public addresses."
USE_HTTPS = "Use an https:// URL."


class RefusedDestination(Exception):
    """The URL may not be called; never retried.

    str(exc) is for the tenant (what to change, no internal addresses, no settings);
    exc.operator_detail is for the server log.
    """

    def __init__(self, message, operator_detail=""):
        super().__init__(message)
        self.operator_detail = operator_detail or message


# --- Addresses ------------------------------------------------------------------------------

# IPv6 ranges that carry an IPv4 address in their last 32 bits: a connection to one of them
# ends up at that IPv4 address (directly, or through a NAT64 translator).
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # IPv4-mapped
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # IPv4-translated (RFC 2765)
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated), e.g. [::127.0.0.1]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # NAT64 well-known prefix
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # 6to4: the IPv4 address is in bits 16-48
# Never public, whatever Python's ipaddress tables say in a given version: where the IPv4
# address sits (local-use NAT64) or how it is obfuscated (Teredo) cannot be told reliably.
_NEVER_PUBLIC = [
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.ip_network("2001::/32"),  # Teredo
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated)
]


def allowed_networks():
    """The networks that may be called even though they are not public (and over plain http)."""
    return [ipaddress.ip_network(text.strip(), strict=False)
            for text in getattr(settings, SETTING, None) or [] if text.strip()]


def _ip(address):
    """An ip_address from an address object or text (an IPv6 scope id, "%eth0", is dropped)."""
    if isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    return ipaddress.ip_address(str(address).split("%", 1)[0])


def embedded_ipv4(address):
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), or None."""
    address = _ip(address)
    if address.version != 6:
        return None
    if any(address in network for network in (_MAPPED, _TRANSLATED, _COMPATIBLE, _NAT64)):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def _in_allowed_network(address, networks=None):
    """In an allowed network, itself or through the IPv4 address it carries."""
    address = _ip(address)
    networks = allowed_networks() if networks is None else networks
    candidates = [address, embedded_ipv4(address)]
    return any(candidate in network for candidate in candidates if candidate is not None for network in networks)


def _is_public(address):
    address = _ip(address)
    if address.is_multicast or not address.is_global or any(address in network for network in _NEVER_PUBLIC):
        # IPv4-mapped addresses are "not global" to ipaddress; they are judged by what they carry.
        if not (address.version == 6 and address in _MAPPED):
            return False
    inner = embedded_ipv4(address)
    return inner is None or (inner.is_global and not inner.is_multicast)


def is_allowed_address(address):
    """True if the address may be called (over https): in an allowed network, or public.

    Public: globally routable and not multicast; an IPv6 address that carries an IPv4
    address (mapped, compatible, NAT64, 6to4) is public only if that IPv4 address is;
    Teredo and local-use NAT64 are never public.
    """
    return _in_allowed_network(address) or _is_public(address)


def may_connect(address, scheme, networks):
    """(allowed, reason) for connecting to an address over a scheme."""
    if _in_allowed_network(address, networks):
        return True, ""
    if not _is_public(address):
        return False, "private"
    if scheme != "https":
        return False, "http"
    return True, ""


# --- URLs -------------------------------------------------------------------------------------

_BRACKETED = re.compile(r"\[([^\[\]]*)\](?::(.*))?", re.DOTALL)
_HOST_PORT = re.compile(r"([^:\[\]]*)(?::(.*))?", re.DOTALL)
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")  # what the WHATWG URL parser reads as IPv4


def check_url(url):
    """Raise RefusedDestination unless the URL may be saved and called. Resolves nothing.

    Where a host name resolves to is checked at connect time (GuardedAdapter); here a
    named host over plain http passes only if some network is allowed at all.
    """
    if not isinstance(url, str) or not url:
        raise RefusedDestination("Enter the vendor's URL.", f"not a URL: {url!r}")
    # Characters that parsers strip, split on or read differently: refuse them anywhere.
    if "\\" in url:
        raise RefusedDestination("The URL contains a backslash; use forward slashes (/) only.",
                                 f"backslash in URL {url!r}")
    if any(char.isspace() or unicodedata.category(char).startswith("C") for char in url):
        raise RefusedDestination("The URL contains spaces or invisible characters; remove them or percent-encode them.",
                                 f"whitespace or control character in URL {url!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RefusedDestination("This is not a valid URL.", f"urlsplit failed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedDestination(USE_HTTPS, f"scheme {parts.scheme!r} refused")
    netloc = parts.netloc
    if "@" in netloc:
        raise RefusedDestination(
            "Remove the user name and password from the URL (the part before '@'); "
            "put credentials in the integration's credentials instead.", "userinfo in URL")
    if "%" in netloc:
        raise RefusedDestination("The URL's host may not contain percent-escapes (%).", f"'%' in host {netloc!r}")
    host, port = _split_netloc(netloc)
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise RefusedDestination("The port must be a number from 1 to 65535.", f"port {port!r} refused")
    if not host:
        raise RefusedDestination("The URL names no host.", f"no host in {url!r}")

    address = _literal_address(host)
    if address is None:
        _check_name(host)
        if parts.scheme != "https" and not allowed_networks():
            # Plain http is only for allowed networks, and there are none.
            raise RefusedDestination(USE_HTTPS, f"plain http to {host}, and {SETTING} is empty")
        return
    allowed, reason = may_connect(address, parts.scheme, allowed_networks())
    if not allowed and reason == "private":
        raise RefusedDestination(
            f"The URL's host is a private or local address; {PUBLIC_ONLY}",
            f"{address} is not public; it can only be called if {SETTING} lists its network")
    if not allowed:
        raise RefusedDestination(USE_HTTPS, f"plain http to {address}, which is not in {SETTING}")


def _split_netloc(netloc):
    """(host, port or None); a bracketed host comes back with its brackets."""
    match = _BRACKETED.fullmatch(netloc) if netloc.startswith("[") else _HOST_PORT.fullmatch(netloc)
    if not match:
        raise RefusedDestination("The URL's host is not valid.", f"unreadable netloc {netloc!r}")
    host = f"[{match.group(1)}]" if netloc.startswith("[") else match.group(1)
    return host, match.group(2)


def _literal_address(host):
    """The IP address a host names literally, or None for a name. Refuses spellings of an
    address other than a plain dotted quad or a bracketed IPv6 address."""
    if host.startswith("["):
        try:
            return ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise RefusedDestination("The URL's IPv6 address is not valid.", f"bad IPv6 literal {host!r}") from None
    if not host.isascii():
        host = _idna(host)
    if not _NAME.fullmatch(host):
        raise RefusedDestination("The URL's host name is not valid.", f"bad characters in host {host!r}")
    last_label = host[:-1].rsplit(".", 1)[-1] if host.endswith(".") else host.rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.fullmatch(last_label):
        return None
    # Looks like IPv4 to some parser (browsers, inet_aton: 0x7f.1, 2130706433, 0177.0.0.1,
    # 127.1): accept only the one spelling every parser reads the same way.
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        address = None
    if address is None or str(address) != host:
        raise RefusedDestination(
            "Write an IP address as four plain decimal numbers (like 203.0.113.10), or use the host's name.",
            f"non-canonical numeric host {host!r}")
    return address


def _idna(host):
    """A non-ASCII host name in its ASCII (punycode) form; refused unless the IDNA 2003 codec
    and the conversion requests applies (IDNA 2008 / UTS 46) agree on it."""
    try:
        ours = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise RefusedDestination("The URL's host is not a valid international domain name.",
                                 f"IDNA conversion failed for {host!r}") from None
    # requests converts non-ASCII hosts itself before connecting; a name the two conversions
    # read differently (e.g. 'ß') could be checked as one host and called as another.
    theirs = getattr(requests.models.PreparedRequest, "_get_idna_encoded_host", None)
    if theirs is not None:
        try:
            theirs = theirs(host)
        except UnicodeError:
            theirs = None
        if theirs is None or theirs.lower() != ours.lower():
            raise RefusedDestination(
                "The URL's host is an international domain name that programs read differently; "
                "use its xn-- form.", f"IDNA 2003 {ours!r} vs requests {theirs!r} for {host!r}")
    return ours


def _check_name(host):
    name = host[:-1] if host.endswith(".") else host
    if not all(0 < len(label) <= 63 for label in name.split(".")) or len(name) > 253:
        raise RefusedDestination("The URL's host name is not valid.", f"bad labels in host {host!r}")
