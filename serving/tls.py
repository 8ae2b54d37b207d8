"""TLS for serving connections: PEM certificates and keys as gRPC credentials and ssl contexts, on both ends.

Every PEM is read here, so a missing, unreadable or non-PEM file is one error that names the file and what it
was for, not gRPC's or OpenSSL's words at the first call.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import grpc

PEM = Union[str, os.PathLike, bytes]  # a PEM file's path, or its bytes


def _source(pem: PEM) -> str:
    return "(given as bytes)" if isinstance(pem, bytes) else os.fspath(pem)


def read_pem(pem: PEM, what: str) -> bytes:
    """The bytes of a PEM (given as bytes, or a file's path); `what` it is for names it in errors.

    A missing or unreadable file raises its OSError with the file and `what` in the message; anything without a
    PEM block is a ValueError.
    """
    source = _source(pem)
    if isinstance(pem, bytes):
        data = pem
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise type(error)(f"cannot read the {what} {source}: {error.strerror or error}") from error
    if b"-----BEGIN " not in data:
        raise ValueError(f"the {what} {source} is not PEM (no '-----BEGIN' line)")
    return data


def _pem_path(pem: PEM, what: str) -> str:
    # Python's ssl module loads certificate chains and keys from files only.
    if isinstance(pem, bytes):
        raise ValueError(f"over REST (Python's ssl module) the {what} must be a file, not bytes")
    read_pem(pem, what)  # its errors name the file; OpenSSL's do not
    return os.fspath(pem)


def _load_chain(context: ssl.SSLContext, cert: PEM, key: PEM, role: str) -> None:
    cert_path, key_path = _pem_path(cert, f"{role} certificate"), _pem_path(key, f"{role} key")
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as error:
        raise ValueError(f"the {role} key {key_path} does not belong to the certificate {cert_path}, or one of "
                         f"them is not what it should be: {error}") from error


@dataclass(frozen=True)
class ClientTls:
    """How a client talks TLS to a server.

    ca_cert: the certificate(s) that signed the server's; None trusts the system's roots.
    client_cert, client_key: together, the certificate and key this client shows a server that asks for one
      (mutual TLS); neither, without.
    Each is a PEM file's path or its bytes (over REST, the client certificate and key must be files).
    """

    ca_cert: PEM | None = None
    client_cert: PEM | None = None
    client_key: PEM | None = None

    def _check_pair(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("a client certificate goes with its key (client_cert and client_key, --client-cert and "
                             "--client-key): give both or neither")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials: the files are read now."""
        import grpc  # grpc: heavy, and `emopy predict` without --server does without it

        self._check_pair()
        return grpc.ssl_channel_credentials(
            root_certificates=None if self.ca_cert is None else read_pem(self.ca_cert, "CA certificate"),
            private_key=None if self.client_key is None else read_pem(self.client_key, "client key"),
            certificate_chain=None if self.client_cert is None else read_pem(self.client_cert, "client certificate"))

    def ssl_context(self) -> ssl.SSLContext:
        """An ssl context for https (REST) that verifies the server's certificate and host name."""
        self._check_pair()
        # Text outside the PEM blocks is ignored, so a stray non-ASCII byte there must not fail the decoding.
        cadata = (None if self.ca_cert is None
                  else read_pem(self.ca_cert, "CA certificate").decode("ascii", errors="replace"))
        try:
            context = ssl.create_default_context(cadata=cadata)
        except ssl.SSLError as error:
            raise ValueError(f"the CA certificate {_source(self.ca_cert)} cannot be loaded: {error}") from error
        if self.client_cert is not None:
            _load_chain(context, self.client_cert, self.client_key, "client")
        return context


@dataclass(frozen=True)
class ServerTls:
    """A server's TLS: its certificate chain and private key (PEM files); with client_ca, only clients showing
    a certificate that it signed get in (mutual TLS)."""

    cert: str | os.PathLike
    key: str | os.PathLike
    client_ca: str | os.PathLike | None = None

    def server_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials: the files are read now."""
        import grpc  # grpc: heavy, and `emopy predict` without --server does without it

        client_ca = None if self.client_ca is None else read_pem(self.client_ca, "client CA certificate")
        return grpc.ssl_server_credentials([(read_pem(self.key, "TLS key"), read_pem(self.cert, "TLS certificate"))],
                                           root_certificates=client_ca, require_client_auth=client_ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        """An ssl context for the REST port; building it also checks that the key belongs to the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _load_chain(context, self.cert, self.key, "TLS")
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=_pem_path(self.client_ca, "client CA certificate"))
            except ssl.SSLError as error:
                raise ValueError(f"the client CA certificate {self.client_ca} cannot be loaded: {error}") from error
            context.verify_mode = ssl.CERT_REQUIRED
        return context


# How a TLS mismatch looks from the client: the server hangs up on a plain client, or on (or alerts) a TLS client
# without the certificate it asks for; or the server's certificate is not one the client trusts. A plain REST
# client may still be writing its body when the server hangs up, and then sees a broken pipe or a reset.
_HUNG_UP = ("Socket closed", "Remote end closed connection", "EOF occurred in violation of protocol",
            "CERTIFICATE_REQUIRED", "Broken pipe", "Connection reset by peer")
_NOT_TRUSTED = "CERTIFICATE_VERIFY_FAILED"


def explain_mismatch(details: str, tls: ClientTls | None) -> str:
    """A failed call's details, with what to do when they look like a TLS mismatch between client and server."""
    if _NOT_TRUSTED in details:
        return (f"{details} (the server's certificate is not one this client trusts: give the CA that signed it, "
                "ClientTls(ca_cert=...) or --ca-cert, and connect to a host name the certificate names)")
    if any(words in details for words in _HUNG_UP):
        if tls is None:
            return f"{details} (the server may speak only TLS: connect with ClientTls(...), or --tls / --ca-cert)"
        if tls.client_cert is None:
            return (f"{details} (the server may want a client certificate: ClientTls(client_cert=..., "
                    "client_key=...), or --client-cert and --client-key)")
    return details
