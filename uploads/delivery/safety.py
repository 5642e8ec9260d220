"""The outbound destination guard: the portal calls URLs its tenants type in, and must not be
turned against its own network.

Two checks, at two moments:

- check_url(url), when a URL is saved and again before each request: only what the URL
  itself says (no DNS, so saving never depends on it). It refuses anything two URL parsers
  could read differently (backslashes, userinfo, escapes or odd characters in the host,
  numeric hosts that are not plain dotted quads), other schemes than http(s), plain http
  except to allowed networks, and literal IP addresses that are not public.
- GuardedAdapter / guarded_session(), at connect time: every connection (first hop,
  redirect hops, retries) resolves the host itself and connects only to an address that is
  public, or in settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS (plain http: only the latter).
  The address checked is the address connected, so a DNS answer that changes between a
  check and the connect (DNS rebinding) gains nothing. TLS still uses the URL's host name
  for SNI and for the certificate check.

A refusal is RefusedDestination: its message is for the tenant, its operator_detail (the
resolved address, the setting to change) for the server log. The checks that need no
network live in integrations.destinations (a URL is checked there when it is saved).
"""

import ipaddress
import socket
import sys

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from integrations.destinations import (  # noqa: F401 — check_url and the rest are the guard's API too
    PUBLIC_ONLY, SETTING, USE_HTTPS, RefusedDestination, allowed_networks, check_url, embedded_ipv4,
    is_allowed_address, may_connect,
)

# --- Connect-time guard ---------------------------------------------------------------------


class _GuardedConnectionMixin:
    """Resolves the host itself, and connects only to an address that may be called.

    Replaces urllib3's HTTPConnection._new_conn (which resolves and connects in one step).
    self.host is left alone, so the Host header, TLS SNI and the certificate's hostname
    check all still use the URL's name.
    """

    guard_scheme = "http"

    def _new_conn(self):
        if getattr(self, "_tunnel_host", None):
            raise RefusedDestination("The portal does not call vendors through a proxy.",
                                     f"tunnel to {self._tunnel_host} refused")
        host = self._dns_host.strip("[]")  # the name to resolve, trailing dot and all
        try:
            infos = socket.getaddrinfo(host, self.port, urllib3_connection.allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        networks = allowed_networks()
        permitted, refused = [], []
        for *_, sockaddr in infos:
            allowed, reason = may_connect(sockaddr[0], self.guard_scheme, networks)
            (permitted if allowed else refused).append((sockaddr[0], reason))
        if not permitted:
            raise self._refusal(refused)

        # Connect to the permitted addresses in resolver order, as create_connection does;
        # given an IP literal, create_connection does no DNS of its own.
        error = None
        for address, _ in permitted:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except socket.timeout as exc:
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})")
                error.__cause__ = exc
                continue
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
                error.__cause__ = exc
                continue
            # Belt and braces: judge the peer the socket really has.
            peer = sock.getpeername()[0]
            if not may_connect(peer, self.guard_scheme, networks)[0]:
                sock.close()
                raise self._refusal([(peer, "private")])
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise error

    def _refusal(self, refused):
        addresses = ", ".join(address for address, _ in refused)
        if any(reason == "private" for _, reason in refused):
            try:
                ipaddress.ip_address(self.host.strip("[]"))
                subject = "The URL's host is"  # an address, maybe one a redirect gave: not echoed
            except ValueError:
                subject = f"{self.host} resolves to"
            return RefusedDestination(
                f"{subject} a private or local address; {PUBLIC_ONLY}",
                f"{self.guard_scheme}://{self.host}:{self.port} resolves to {addresses}, not public; "
                f"it can only be called if {SETTING} lists its network")
        return RefusedDestination(
            USE_HTTPS, f"plain http to {self.host}:{self.port} ({addresses}), which is not in {SETTING}")


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    guard_scheme = "http"


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    guard_scheme = "https"


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the connect-time guard.

    A refusal comes out of Session.send as requests.ConnectionError with the
    RefusedDestination as its cause (refused_cause() finds it); urllib3 never retries it.
    Proxies are never used.
    """

    def __init__(self, pool_connections=10, pool_maxsize=10, **kwargs):
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        # An attribute of our own: PoolManager shares urllib3's module-level dict otherwise.
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise RefusedDestination("The portal does not call vendors through a proxy.", f"proxy {proxy} refused")

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        try:
            # proxies=None: a proxy would connect for us, to where the guard cannot see.
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)
        except RefusedDestination as exc:
            raise requests.ConnectionError(exc, request=request) from exc


def guarded_session():
    """A requests session for vendor calls: guarded connections, nothing from the environment
    (proxies, .netrc), and pools meant to be kept per worker process and reused (keep-alive)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {}
    session.mount("http://", GuardedAdapter())
    session.mount("https://", GuardedAdapter())
    return session


def refused_cause(exc):
    """The RefusedDestination behind an exception (requests' ConnectionError, urllib3's
    MaxRetryError / NewConnectionError, a chain of causes), or None for a network error."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RefusedDestination):
            return current
        if isinstance(current, BaseException):
            pending += [current.__cause__, current.__context__, getattr(current, "reason", None)]
            pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return None
