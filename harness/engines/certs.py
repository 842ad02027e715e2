"""Certificates for the TLS and mTLS listeners, made at run time with `cryptography`, never committed.

One folder per session holds two unrelated CAs and the leaves they sign. Every peer reads the same
files by name (docs/peer-contract.md, "Channels"): the Go peer's containers mount the folder read-only,
so the folder is world-readable, like the catalogue. These keys protect nothing but a loopback test run
and die with the session.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.engines.peer import pid_alive
from python_impl.channels import CLIENT_CN, CLIENT_CERTS, OTHER_CLIENT_CN, SERVER_NAMES, TRUST

# The name a server_name override asks for: in the server certificate, never resolvable.
OVERRIDE_NAME = "peer.interop.test"  # one of SERVER_NAMES
# the names the peers read (python_impl/channels.py; the Go engine uses the same)
FILES = ("server.pem", "server.key", *TRUST.values(), *(f for pair in CLIENT_CERTS.values() if pair for f in pair))
# Short-lived: a run takes minutes. Backdated a little against clock skew between host and containers.
_VALID = datetime.timedelta(days=2)
_SKEW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "grpc-interop-harness"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _authority(cn: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(cert, key)


def _leaf(ca: Authority, cn: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - _SKEW).not_valid_after(now + _VALID)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False))
    if server:  # every name a client may dial or ask for: loopback by name and address, and the override
        builder = builder.add_extension(x509.SubjectAlternativeName([
            *(x509.DNSName(n) for n in SERVER_NAMES),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]),
            critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return builder.sign(ca.key, hashes.SHA256()), key


def _write(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o644)  # the Go peer's container runs as an unprivileged user


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make(folder: Path) -> Path:
    """Write a fresh set of FILES into folder (made if missing) and return it.

    ca signs server (SANs: localhost, OVERRIDE_NAME, 127.0.0.1, ::1) and client (CN CLIENT_CN);
    other_ca, which no server trusts, signs other_client: the CA a misconfigured client trusts, and
    the certificate an mTLS server must refuse."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca, other = _authority("grpc-interop-harness test CA"), _authority("grpc-interop-harness other CA")
    server, server_key = _leaf(ca, "interop-server", server=True)
    client, client_key = _leaf(ca, CLIENT_CN, server=False)
    other_client, other_client_key = _leaf(other, OTHER_CLIENT_CN, server=False)
    for name, data in (("ca.pem", _pem(ca.cert)), ("server.pem", _pem(server)), ("server.key", _key_pem(server_key)),
                       ("client.pem", _pem(client)), ("client.key", _key_pem(client_key)),
                       ("other_ca.pem", _pem(other.cert)), ("other_client.pem", _pem(other_client)),
                       ("other_client.key", _key_pem(other_client_key))):
        _write(folder, name, data)
    return folder


_PREFIX = "interop-certs-"


def prefix() -> str:
    """The temporary folder prefix of this process's certificates: its pid, so a later run can tell
    a killed session's keys from a live one's."""
    return f"{_PREFIX}{os.getpid()}-"


def reap_dead() -> int:
    """Remove the certificate folders of sessions whose process is gone (a SIGKILL runs no cleanup);
    returns how many."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed

