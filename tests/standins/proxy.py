"""An HTTP proxy on loopback, and a TLS front for the stand-ins: what a self-hosted runner
behind a corporate proxy looks like.

- ``Proxy`` speaks both forms a client uses: ``CONNECT host:port`` (a tunnel, for https URLs:
  the client speaks TLS through it) and absolute-URI requests (``GET http://host:port/path``,
  for http URLs: the proxy forwards the request). It reaches 127.0.0.1 only, and ``routes``
  maps an address the client asks for to the port that really serves it: a test points the
  pipe at ``127.0.0.1:<a closed port>``, which only the proxy knows how to reach, so a request
  that bypasses the proxy fails. It records every request (``log``), and with ``credentials``
  it answers 407 to a request without the matching ``Proxy-Authorization``.
- ``TlsFront`` terminates TLS for a plain-http stand-in, with a certificate for 127.0.0.1
  signed by a throwaway CA (``make_ca``) that the pipe trusts through AWS_CA_BUNDLE.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import io
import ipaddress
import select
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def closed_port() -> tuple[socket.socket, int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening) while the socket
    is kept: nothing reaches it directly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    return sock, int(sock.getsockname()[1])


@dataclass(frozen=True)
class Forwarded:
    """An absolute-URI request, to be sent on in origin form."""

    method: str
    netloc: str  # host:port
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Entry:
    method: str  # CONNECT, or the forwarded request's method
    target: str  # host:port asked for
    path: str = ""  # the forwarded request's path (absolute-URI form)
    authorized: bool = True


def _relay(one: socket.socket, other: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [one, other]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (other if sock is one else one).sendall(data)
    except OSError:
        return


class Proxy:
    def __init__(
        self, routes: dict[str, int] | None = None, credentials: tuple[str, str] | None = None
    ) -> None:
        self.routes = dict(routes or {})  # "127.0.0.1:<asked>" -> the port that serves it
        self.credentials = credentials
        self.log: list[Entry] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._handle(self.connection, self.rfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def targets(self) -> set[str]:
        with self._lock:
            return {entry.target for entry in self.log}

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def _where(self, target: str) -> tuple[str, int] | None:
        """The real address of ``host:port``: loopback only."""
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if target in self.routes:
            return LOOPBACK, self.routes[target]
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            if host != "localhost":
                return None
        return LOOPBACK, int(port)

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        return headers.get("proxy-authorization", "") == f"Basic {expected}"

    def _handle(self, connection: socket.socket, reader: io.BufferedIOBase) -> None:
        line = reader.readline(65537).decode("latin-1")
        parts = line.split()
        if len(parts) != 3:
            return
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(65537).decode("latin-1")
            if header in ("\r\n", "\n", ""):
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        authorized = self._authorized(headers)
        if method == "CONNECT":
            self._record(Entry("CONNECT", target, authorized=authorized))
            self._tunnel(connection, target, authorized)
            return
        if not target.startswith("http://"):
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        rest = target[len("http://") :]
        netloc, _, path = rest.partition("/")
        netloc = netloc if ":" in netloc else f"{netloc}:80"
        self._record(Entry(method, netloc, "/" + path, authorized=authorized))
        length = int(headers.get("content-length") or 0)
        body = reader.read(length) if length else b""
        self._forward(connection, Forwarded(method, netloc, "/" + path, headers, body), authorized)

    def _record(self, entry: Entry) -> None:
        with self._lock:
            self.log.append(entry)

    def _tunnel(self, connection: socket.socket, target: str, authorized: bool) -> None:
        if not authorized:
            connection.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        where = self._where(target)
        try:
            if where is None:
                raise OSError("not loopback")
            upstream = socket.create_connection(where, timeout=10)
        except OSError:
            connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _relay(connection, upstream)

    def _forward(self, connection: socket.socket, request: Forwarded, authorized: bool) -> None:
        if not authorized:
            connection.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        where = self._where(request.netloc)
        if where is None:
            connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        upstream = http.client.HTTPConnection(*where, timeout=30)
        hop_by_hop = ("proxy-authorization", "proxy-connection", "connection")
        sent = {k: v for k, v in request.headers.items() if k not in hop_by_hop}
        try:
            upstream.request(request.method, request.path, body=request.body or None, headers=sent)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        finally:
            upstream.close()
        head = [f"HTTP/1.1 {answer.status} {answer.reason}"]
        head += [
            f"{k}: {v}"
            for k, v in answer.getheaders()
            if k.lower() not in ("content-length", "connection", "transfer-encoding")
        ]
        head += [f"Content-Length: {len(data)}", "Connection: close"]
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)


@dataclass(frozen=True)
class Ca:
    bundle: Path  # the CA certificate (PEM): what AWS_CA_BUNDLE points at
    cert: Path  # the server certificate for 127.0.0.1 (PEM)
    key: Path


def make_ca(directory: Path) -> Ca:
    """A throwaway CA and a certificate for 127.0.0.1 (and localhost) that it signs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aws-credentials-pipe test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca = Ca(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca


class TlsFront:
    """https://127.0.0.1:<port> in front of a plain-http stand-in on ``target_port``."""

    def __init__(self, target_port: int, ca: Ca) -> None:
        self.target_port = target_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(ca.cert), str(ca.key))
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        self._server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TlsFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, raw: socket.socket) -> None:
        try:
            secured = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with secured, socket.create_connection((LOOPBACK, self.target_port), timeout=10) as upstream:
            _relay_tls(secured, upstream)


def _relay_tls(secured: ssl.SSLSocket, upstream: socket.socket) -> None:
    """Like _relay, minding the bytes TLS has already decrypted (select does not see them)."""
    try:
        while True:
            readable: list[socket.socket]
            if secured.pending():
                readable = [secured]
            else:
                readable, _, _ = select.select([secured, upstream], [], [], 30)
                if not readable:
                    return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (upstream if sock is secured else secured).sendall(data)
    except (OSError, ssl.SSLError):
        return
