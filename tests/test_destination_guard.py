"""The outbound destination guard (uploads/delivery/safety.py): the URL check made when a URL
is saved, and the connect-time check on the address actually connected.

The connect-time tests use real sockets on loopback only: small http.server servers on
127.0.0.1 / 127.0.0.2 (Linux routes all of 127/8 to loopback), which record every
connection and request they get, so "refused" can be shown to mean "nothing was sent".
"""

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from uploads.delivery import safety
from uploads.delivery.safety import RefusedDestination, check_url, guarded_session, is_allowed_address, refused_cause

SETTING = "PORTAL_OUTBOUND_ALLOWED_NETWORKS"


# --- Local servers ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so that connection reuse can be seen

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "host": self.headers.get("Host")})
        status, headers = server.answer
        body = b"ok"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class RecordingServer(ThreadingHTTPServer):
    """Answers every GET with `answer` (status, headers); records connections and requests."""

    daemon_threads = True

    def __init__(self, host, port=0, answer=(200, {}), ssl_context=None):
        self.connections, self.requests, self.sni = [], [], []
        self.answer = answer
        self.ssl_context = ssl_context
        if ssl_context is not None:
            ssl_context.sni_callback = lambda sslobj, name, context: self.sni.append(name)
        super().__init__((host, port), _Handler)

    @property
    def port(self):
        return self.server_address[1]

    def get_request(self):
        sock, address = super().get_request()
        self.connections.append(address)
        return sock, address

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:  # the TLS handshake, in the handler's thread
            request = self.ssl_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client that gives up on the handshake is expected in these tests


@pytest.fixture
def serve():
    """serve(host, ...) starts a RecordingServer in a thread; all are stopped after the test."""
    servers = []

    def start(host="127.0.0.1", **kwargs):
        server = RecordingServer(host, **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def session():
    with guarded_session() as session:
        yield session


@pytest.fixture
def resolve_as(monkeypatch):
    """resolve_as({"vendor.example.com": ["127.0.0.1"]}): what DNS answers for those names."""

    def install(answers):
        real = socket.getaddrinfo

        def fake(host, port, family=0, type=0, proto=0, flags=0):
            if host not in answers:
                return real(host, port, family, type, proto, flags)
            results = []
            for address in answers[host]:
                results += real(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            return results

        monkeypatch.setattr(socket, "getaddrinfo", fake)

    return install


def assert_refused(excinfo):
    refused = refused_cause(excinfo.value)
    assert isinstance(refused, RefusedDestination), f"not a refusal: {excinfo.value!r}"
    assert SETTING not in str(refused) and SETTING in refused.operator_detail
    return refused


# --- check_url --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://8.8.8.8/x",
    "https://vendor.example.com/api/v1/data/calls/?a=1&b=2",
    "https://[2001:4860:4860::8888]/",
    "https://vendor.example.com:8443/upload?name=a%20b&sig=x%2Fy#top",
    "https://VENDOR.Example.com./path/with%20escape",
    "https://bücher.example/",  # an international name, as its IDNA form
    "https://[::ffff:8.8.8.8]/",
    "https://[64:ff9b::808:808]/",  # NAT64 of a public address
    "https://vendor.example.com/users/a@b",  # '@' outside the host is harmless
])
def test_check_url_accepts(url, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    check_url(url)


@pytest.mark.parametrize("url", [
    # Parser disagreement: urlsplit reads the host after '@', requests/urllib3 the one before.
    "http://127.0.0.1:8001\\@127.0.0.2:8002/",
    "https://127.0.0.1:8001\\@1.1.1.1/",
    "https://vendor.example.com\\@127.0.0.1/",
    "https:\\\\vendor.example.com/",
    "https://vendor.example.com/path\\x",
    "https://user:pw@vendor.example.com/",
    "https://vendor.example.com%2f@evil/",
    "https://vendor%2eexample.com/",
    # Spellings of 127.0.0.1 that some parser (inet_aton, browsers) accepts.
    "https://0x7f.0.0.1/",
    "https://0x7f.1/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://8.8.8.8./",
    "https://１２７.０.０.１/",  # fullwidth digits: IDNA maps them to 127.0.0.1
    # IPv6 forms that carry a non-public IPv4 address.
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::7f00:1]/",
    "https://[2002:7f00:1::]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "https://[fe80::1%25eth0]/",
    # Plainly non-public addresses.
    "https://127.0.0.1/",
    "https://[::1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/",
    "https://100.64.0.1/",
    "https://224.0.0.1/",
    # Scheme, port, host.
    "http://8.8.8.8/",
    "http://vendor.example.com/",  # plain http, and no network is allowed
    "ftp://vendor.example.com/file",
    "javascript:alert(1)",
    "//vendor.example.com/",
    "https://vendor.example.com:0/",
    "https://vendor.example.com:70000/",
    "https://vendor.example.com:/",
    "https://vendor.example.com:+443/",
    "https://vendor example.com/",
    "https://vendor.example.com\t/",
    "https://vendor.example.com\n.evil/",
    "https://vendor.example.com/\u200b",  # an invisible character
    "https:///path",
    "https://:443/",
    "https://faß.de/",  # IDNA 2003 and 2008 read it as two different hosts
    "https://a..example.com/",
    "",
])
def test_check_url_refuses(url, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(RefusedDestination) as excinfo:
        check_url(url)
    message = str(excinfo.value)
    assert message and SETTING not in message
    for internal in ("127.0.0.1", "127.0.0.2", "::7f00:1", "169.254", "10.0.0.5", "100.64"):
        assert internal not in message
    assert excinfo.value.operator_detail


def test_check_url_plain_http_only_to_allowed_networks(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16", "127.0.0.1/32"]
    check_url("http://10.20.3.4:8080/in")
    check_url("http://127.0.0.1:9000/")
    check_url("https://10.20.3.4/")
    # A name may be http now: its addresses are checked when the connection is made.
    check_url("http://vendor.internal/")
    for url in ("http://8.8.8.8/", "http://10.21.0.1/", "https://127.0.0.2/"):
        with pytest.raises(RefusedDestination) as excinfo:
            check_url(url)
        assert SETTING not in str(excinfo.value) and SETTING in excinfo.value.operator_detail


def test_check_url_messages_are_for_tenants(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(RefusedDestination, match=r"^Use an https:// URL\.$"):
        check_url("http://8.8.8.8/")
    with pytest.raises(RefusedDestination, match="private or local address; the portal only calls public") as excinfo:
        check_url("https://169.254.169.254/")
    assert "169.254.169.254" in excinfo.value.operator_detail


# --- is_allowed_address -----------------------------------------------------------------------


@pytest.mark.parametrize("address, allowed", [
    ("8.8.8.8", True),
    ("2001:4860:4860::8888", True),
    ("::ffff:8.8.8.8", True),
    ("64:ff9b::808:808", True),
    ("127.0.0.1", False),
    ("0.0.0.0", False),
    ("10.0.0.5", False),
    ("100.64.0.1", False),
    ("169.254.169.254", False),
    ("224.0.0.1", False),
    ("::1", False),
    ("::", False),
    ("fe80::1", False),
    ("fe80::1%eth0", False),
    ("fc00::1", False),
    ("fec0::1", False),
    ("ff0e::1", False),
    # IPv4-mapped / IPv4-compatible / IPv4-translated
    ("::ffff:127.0.0.1", False),
    ("::ffff:169.254.169.254", False),
    ("::127.0.0.1", False),
    ("::a00:5", False),
    ("::ffff:0:7f00:1", False),
    # NAT64: the well-known prefix carries the IPv4 address; local-use NAT64 is never public
    ("64:ff9b::7f00:1", False),
    ("64:ff9b::a9fe:a9fe", False),
    ("64:ff9b:1::808:808", False),
    # 6to4: the IPv4 address is in bits 16-48
    ("2002:7f00:1::", False),
    ("2002:a00:5::1", False),
    ("2002:a9fe:a9fe::", False),
    # Teredo: the client's address is obfuscated, so never public
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
])
def test_is_allowed_address(address, allowed, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    assert is_allowed_address(address) is allowed


def test_allowed_networks_let_embedded_forms_in_too(settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", " 10.0.0.0/8 ", ""]
    assert [str(network) for network in safety.allowed_networks()] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert is_allowed_address("127.0.0.1")
    assert is_allowed_address("::ffff:127.0.0.1")
    assert is_allowed_address("64:ff9b::a00:5")
    assert not is_allowed_address("127.0.0.2")
    assert not is_allowed_address("::1")


# --- The connect-time guard -------------------------------------------------------------------


def test_allowed_loopback_is_called(serve, session, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server = serve("127.0.0.1")
    response = session.get(f"http://127.0.0.1:{server.port}/ping", timeout=5)
    assert response.status_code == 200 and response.text == "ok"
    assert server.requests == [{"path": "/ping", "host": f"127.0.0.1:{server.port}"}]


def test_loopback_refused_at_connect_time_and_nothing_sent(serve, session, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    server = serve("127.0.0.1")
    with pytest.raises(requests.ConnectionError) as excinfo:
        session.get(f"http://127.0.0.1:{server.port}/", timeout=5)
    refused = assert_refused(excinfo)
    assert "127.0.0.1" in refused.operator_detail
    assert server.connections == [] and server.requests == []


def test_name_resolving_to_loopback_refused_at_connect_time(serve, session, settings):
    """check_url resolves nothing, so a name passes it; the address is judged when connecting."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    server = serve("127.0.0.1")
    check_url(f"https://localhost:{server.port}/")
    for scheme in ("http", "https"):  # https: refused before any TLS handshake
        with pytest.raises(requests.ConnectionError) as excinfo:
            session.get(f"{scheme}://localhost:{server.port}/", timeout=5)
        refused = assert_refused(excinfo)
        assert str(refused) == ("localhost resolves to a private or local address; "
                                "the portal only calls public addresses.")
        assert "127.0.0.1" in refused.operator_detail
    assert server.connections == [] and server.requests == []

    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    check_url(f"http://localhost:{server.port}/")
    assert session.get(f"http://localhost:{server.port}/", timeout=5).status_code == 200
    assert len(server.requests) == 1


def test_dns_rebinding_gains_nothing(serve, session, settings, resolve_as):
    """A vendor name whose DNS answers with an internal address: the check is on the address
    the socket connects to, so there is no window between a check and the connect."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = []
    server = serve("127.0.0.1")
    url = f"https://vendor.example.com:{server.port}/"
    check_url(url)
    resolve_as({"vendor.example.com": ["127.0.0.1"]})
    with pytest.raises(requests.ConnectionError) as excinfo:
        session.get(url, timeout=5)
    refused = assert_refused(excinfo)
    assert "127.0.0.1" not in str(refused) and "127.0.0.1" in refused.operator_detail
    assert server.connections == []


def test_only_permitted_addresses_of_a_name_are_connected(serve, session, settings, resolve_as):
    """A name with an allowed and a refused address: only the allowed one is ever connected."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    allowed = serve("127.0.0.1")
    refused = serve("127.0.0.2", port=allowed.port)
    resolve_as({"vendor.example.com": ["127.0.0.2", "127.0.0.1"]})
    for _ in range(3):
        with guarded_session() as fresh:  # a new connection each time
            assert fresh.get(f"http://vendor.example.com:{allowed.port}/", timeout=5).status_code == 200
    assert len(allowed.requests) == 3
    assert refused.connections == []


def test_plain_http_to_a_public_address_refused_at_connect_time(session, settings, resolve_as):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    resolve_as({"vendor.example.com": ["8.8.8.8"]})
    check_url("http://vendor.example.com/")  # a name: the address is judged at connect time
    with pytest.raises(requests.ConnectionError) as excinfo:
        session.get("http://vendor.example.com/", timeout=5)
    refused = assert_refused(excinfo)
    assert str(refused) == "Use an https:// URL." and "8.8.8.8" in refused.operator_detail


def test_redirect_hop_is_checked(serve, session, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    target = serve("127.0.0.2")
    redirector = serve("127.0.0.1", answer=(307, {"Location": f"http://127.0.0.2:{target.port}/internal"}))
    with pytest.raises(requests.ConnectionError) as excinfo:
        session.get(f"http://127.0.0.1:{redirector.port}/", timeout=5, allow_redirects=True)
    refused = assert_refused(excinfo)
    assert "127.0.0.2" in refused.operator_detail and "127.0.0.2" not in str(refused)
    assert len(redirector.requests) == 1
    assert target.connections == [] and target.requests == []


def test_network_errors_are_not_refusals(session, settings):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as excinfo:
        session.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert refused_cause(excinfo.value) is None


def test_refused_cause_digs_through_urllib3_and_requests():
    refusal = RefusedDestination("nope", "detail")
    new_conn = NewConnectionError(None, "Failed to establish a new connection")
    new_conn.__cause__ = refusal
    wrapped = requests.ConnectionError(MaxRetryError(None, "/", reason=new_conn))
    assert refused_cause(wrapped) is refusal
    assert refused_cause(refusal) is refusal
    assert refused_cause(requests.ConnectionError("timed out")) is None
    assert refused_cause(None) is None


def test_keep_alive_and_no_proxies(serve, session, settings):
    """The session is meant to be kept and reused: one connection for several sends; and a
    proxy, from the session or the call, is never used."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server = serve("127.0.0.1")
    session.proxies = {"http": "http://127.0.0.1:9", "https": "http://127.0.0.1:9"}
    for _ in range(3):
        response = session.get(f"http://127.0.0.1:{server.port}/again", timeout=5,
                               proxies={"http": "http://127.0.0.1:9"})
        assert response.status_code == 200
    assert len(server.connections) == 1
    assert [request["path"] for request in server.requests] == ["/again"] * 3  # not a proxy's absolute URL
    assert session.trust_env is False
    adapter = session.get_adapter("https://vendor.example.com/")
    assert isinstance(adapter, safety.GuardedAdapter) and adapter._pool_maxsize == 10


# --- TLS: the name is still used for SNI and the certificate check ----------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throwaway CA and a server certificate for 'localhost' (no IP address in it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    folder = tmp_path_factory.mktemp("tls")

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return {"ca": str(ca_path), "cert": str(cert_path), "key": str(key_path)}


@pytest.fixture
def tls_server(serve, tls_files):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files["cert"], tls_files["key"])
    return serve("127.0.0.1", ssl_context=context)


def test_tls_uses_the_url_host_name(tls_server, tls_files, session, settings):
    """The guard connects to an IP address it chose, yet TLS is about the name: the server
    gets SNI 'localhost' and the certificate (for 'localhost' only) is verified against it."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    response = session.get(f"https://localhost:{tls_server.port}/secure", timeout=5, verify=tls_files["ca"])
    assert response.status_code == 200
    assert tls_server.sni == ["localhost"]
    assert tls_server.requests == [{"path": "/secure", "host": f"localhost:{tls_server.port}"}]


def test_tls_certificate_is_still_checked(tls_server, tls_files, session, settings):
    """The certificate names 'localhost', not 127.0.0.1: calling the address fails verification
    (a TLS error, not a refusal), so the check really is made against the URL's host."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with pytest.raises(requests.exceptions.SSLError) as excinfo:
        session.get(f"https://127.0.0.1:{tls_server.port}/", timeout=5, verify=tls_files["ca"])
    assert refused_cause(excinfo.value) is None
    assert tls_server.requests == []
