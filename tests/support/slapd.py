"""A real OpenLDAP slapd on a free loopback port: generated slapd.conf, seed LDIF, a CA for StartTLS.

No pytest in here: the benchmarks start the same directory. The whole API::

    directory = Slapd(tmp_path)          # writes config, LDIF, certificates; slapadd
    directory.start()                    # slapd on 127.0.0.1:<port>, waits until it answers
    directory.url("uid")                 # ldap://127.0.0.1:<port>/ou=People,dc=example,dc=com?uid?sub?...
    directory.stop()                     # by its PID; start() again brings it back on the same port
    directory.binds_for("alice")         # how many BINDs slapd saw for that user's DN

slapd logs every operation (``-d stats``) to ``slapd.log``, so a test can count the
binds a password spray reached. The seed holds users in a group (member), one in a
uniqueMember group, one outside every group, one whose name needs escaping in a
filter and in a DN, and Active Directory-shaped users (sAMAccountName,
userPrincipalName, memberOf) in ``ou=Corp`` under a small schema of AD's own OIDs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["BASE", "GROUP", "READER_DN", "READER_PASSWORD", "USERS", "Slapd"]

INSTALL = "apt-get install slapd ldap-utils (then: service slapd stop)"
BASE = "dc=example,dc=com"
PEOPLE = f"ou=People,{BASE}"
CORP = f"ou=Corp,{BASE}"
GROUP = f"cn=proxy-users,ou=Groups,{BASE}"
UNIQUE_GROUP = f"cn=unique-users,ou=Groups,{BASE}"
READER_DN = f"cn=reader,{BASE}"
READER_PASSWORD = "reader-" + "pw"
#: uid -> password. ``o'brien, jr*(x)`` needs escaping in a filter ``*()`` and in a DN ``,``.
USERS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
    "o'brien, jr*(x)": "obrien-pw",
}
#: DN escapes of RFC 4514 for the one name that needs them.
_DN_VALUE = {"o'brien, jr*(x)": "o'brien\\, jr*(x)"}

# Just enough of Active Directory's schema, under AD's own OIDs, for its login attributes
# and memberOf as AD returns them (slapd's msuser.schema gives them no equality rule).
_AD_SCHEMA = """\
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.102 NAME 'memberOf'
    EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP inetOrgPerson STRUCTURAL
    MAY ( sAMAccountName $ userPrincipalName $ memberOf ) )
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def find_binaries() -> tuple[str, str, str] | None:
    """slapd, slapadd and openssl, or None when one is missing."""
    found = [shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
        for name in ("slapd", "slapadd", "openssl")]
    if None in found or not Path("/etc/ldap/schema/core.schema").exists():
        return None
    return found[0], found[1], found[2]  # type: ignore[return-value]


def sha512_crypt(password: str) -> str:
    """A ``{CRYPT}`` userPassword that costs slapd a few milliseconds to check, as real
    directories' hashes do: the time of a failed bind is the hash, not scheduling noise."""
    from passlib.hash import sha512_crypt as scheme

    return "{CRYPT}" + scheme.using(rounds=20_000).hash(password)


def ssha(password: str) -> str:
    """An ``{SSHA}`` userPassword, the form slappasswd writes."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _user_dn(uid: str) -> str:
    return f"uid={_DN_VALUE.get(uid, uid)},{PEOPLE}"


def _seed() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: People",
        f"dn: {CORP}\nobjectClass: organizationalUnit\nou: Corp",
        f"dn: ou=Groups,{BASE}\nobjectClass: organizationalUnit\nou: Groups",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: reader\nuserPassword: {ssha(READER_PASSWORD)}",
    ]
    for uid, password in USERS.items():
        entries.append(
            f"dn: {_user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n"
            f"sn: {uid}\nuserPassword: {sha512_crypt(password)}")
    entries.append(f"dn: {GROUP}\nobjectClass: groupOfNames\ncn: proxy-users\n"
                   f"member: {_user_dn('alice')}\nmember: {_user_dn(next(iter(_DN_VALUE)))}")
    entries.append(f"dn: {UNIQUE_GROUP}\nobjectClass: groupOfUniqueNames\ncn: unique-users\n"
                   f"uniqueMember: {_user_dn('bob')}")
    # Active Directory-shaped: log in as jdoe or jdoe@corp.example.com; memberOf on the entry.
    entries.append(
        f"dn: cn=John Doe,{CORP}\nobjectClass: user\ncn: John Doe\nsn: Doe\nuid: jdoe\n"
        f"sAMAccountName: jdoe\nuserPrincipalName: jdoe@corp.example.com\n"
        f"memberOf: {GROUP}\nuserPassword: {ssha('jdoe-pw')}")
    entries.append(
        f"dn: cn=Mary Roe,{CORP}\nobjectClass: user\ncn: Mary Roe\nsn: Roe\nuid: mroe\n"
        f"sAMAccountName: mroe\nuserPrincipalName: mroe@corp.example.com\n"
        f"userPassword: {ssha('mroe-pw')}")
    return "\n\n".join(entries) + "\n"


def _make_ca(directory: Path, openssl: str) -> None:
    """A CA and a server certificate for 127.0.0.1 it signed, written with the openssl CLI."""
    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True,
                       timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=proxygate test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    # The same CA's certificate for another host: a man in the middle with a valid
    # certificate of his own must fail the host name check.
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "elsewhere.key", "-out",
        "elsewhere.csr", "-subj", "/CN=elsewhere.example")
    (directory / "elsewhere.ext").write_text("subjectAltName=DNS:elsewhere.example\n")
    run("x509", "-req", "-in", "elsewhere.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "elsewhere.pem", "-days", "2", "-extfile", "elsewhere.ext")
    # A second CA that signed nothing here: trusting it must fail the handshake.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key",
        "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=some other CA")


class Slapd:
    """One slapd, its files under ``root``; started and stopped by the test."""

    def __init__(self, root: Path, *, require_tls: bool = False, certs: Path | None = None,
                 server_cert: str = "server", tls: bool = True) -> None:
        binaries = find_binaries()
        if binaries is None:
            from support.binaries import require_binary  # pytest: fails under CI, else skips

            for name in ("slapd", "slapadd", "openssl"):
                require_binary(name, install=INSTALL, candidates=(f"/usr/sbin/{name}",))
            require_binary("/etc/ldap/schema/core.schema", install=INSTALL)
            raise AssertionError("unreachable")  # pragma: no cover
        self.slapd, slapadd, openssl = binaries
        self.root = root
        self.port = free_port()
        self.ldaps_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (root / "db").mkdir(parents=True)
        certs = certs or root  # certificates can be shared: RSA keys take a while to make
        if tls and not (certs / "server.pem").exists():
            _make_ca(certs, openssl)
        self.ca_file = str(certs / "ca.pem")
        self.other_ca_file = str(certs / "other-ca.pem")
        (root / "ad-lite.schema").write_text(_AD_SCHEMA)
        schema = "/etc/ldap/schema"
        security = "security simple_bind=128\n" if require_tls else ""
        tls_files = (f"TLSCACertificateFile {certs}/ca.pem\n"
                     f"TLSCertificateFile {certs}/{server_cert}.pem\n"
                     f"TLSCertificateKeyFile {certs}/{server_cert}.key\n") if tls else ""
        self._tls = tls
        (root / "slapd.conf").write_text(f"""\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
include {root}/ad-lite.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {root}/slapd.pid
argsfile {root}/slapd.args
{tls_files}{security}
database mdb
maxsize 33554432
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw {ssha(secrets.token_urlsafe(12))}
directory {root}/db
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
""")
        (root / "seed.ldif").write_text(_seed())
        subprocess.run([slapadd, "-f", str(root / "slapd.conf"), "-l", str(root / "seed.ldif")],
                       check=True, capture_output=True, timeout=60)
        self.log = root / "slapd.log"

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("slapd already runs")
        with self.log.open("ab") as log:
            # -d stats: stay in the foreground (stopped by our PID) and log each operation.
            self.process = subprocess.Popen(
                [self.slapd, "-f", str(self.root / "slapd.conf"), "-h",
                 f"ldap://127.0.0.1:{self.port}/"
                 + (f" ldaps://127.0.0.1:{self.ldaps_port}/" if self._tls else ""),
                 "-d", "stats"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=20, what=f"slapd on port {self.port}")

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"slapd exited: {self.log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests ask -----------------------------------------------------------------

    def url(self, attribute: str = "uid", *, base: str = PEOPLE,
            search_filter: str = "(objectClass=inetOrgPerson)", scheme: str = "ldap") -> str:
        port = self.ldaps_port if scheme == "ldaps" else self.port
        return f"{scheme}://127.0.0.1:{port}/{base}?{attribute}?sub?{search_filter}"

    def options(self, **extra: object) -> dict[str, object]:
        """Gate options for this directory, searched as the reader account."""
        return {"users": self.url(), "ldap_bind_dn": READER_DN,
                "ldap_bind_password": READER_PASSWORD, "ldap_timeout": 5.0, **extra}

    def binds_for(self, uid: str) -> int:
        """BIND operations slapd logged for the user's DN (``-d stats``)."""
        dn = _user_dn(uid).lower()
        text = self.log.read_text(errors="replace").lower()
        return sum(1 for line in text.splitlines()
                   if " bind dn=" in line and f'dn="{dn}"' in line)

    def accepts(self) -> int:
        """Connections slapd accepted so far."""
        return self.log.read_text(errors="replace").count(" ACCEPT from ")

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> None:
        wait_until(lambda: needle in self.log.read_text(errors="replace"), timeout=timeout,
                   what=f"{needle!r} in slapd.log")

