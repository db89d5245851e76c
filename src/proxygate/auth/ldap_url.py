"""RFC 4516 LDAP URLs, RFC 4515 filter escaping and RFC 4514 DN comparison: no network, no ldap3."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = [
    "IN_CHAIN",
    "LdapUrl",
    "escape_filter_value",
    "group_filter",
    "is_ldap_url",
    "normalize_dn",
    "parse_ldap_url",
]

#: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: ``memberOf`` through nested groups.
IN_CHAIN = "1.2.840.113556.1.4.1941"

_SCOPES = {"base": "BASE", "one": "LEVEL", "sub": "SUBTREE"}
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")


def is_ldap_url(value: object) -> bool:
    """True for a ``users=`` value that names a directory rather than a file."""
    return isinstance(value, str) and value[:8].lower().startswith(("ldap://", "ldaps://"))


@dataclass(frozen=True, slots=True)
class LdapUrl:
    """What ``ldap://host:port/base?attribute?scope?filter`` says (Apache's ``AuthLDAPURL``)."""

    scheme: str  # "ldap" or "ldaps"
    host: str
    port: int
    base_dn: str
    #: The attribute that holds the login name (``uid``, ``sAMAccountName``, ...).
    attribute: str
    #: ldap3's name for the scope: "BASE", "LEVEL" or "SUBTREE".
    scope: str
    #: The filter every user entry must also match, always in parentheses.
    filter: str

    @property
    def server(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def user_filter(self, username: str) -> str:
        """``(&<filter>(<attribute>=<username, escaped>))``: a name cannot widen the search."""
        return f"(&{self.filter}({self.attribute}={escape_filter_value(username)}))"


def parse_ldap_url(url: str) -> LdapUrl:
    """Parse an RFC 4516 URL, failing with a message that says what to change.

    As in Apache's ``AuthLDAPURL``: the first attribute listed holds the user name
    (``uid`` when none is), the scope defaults to ``sub`` and the filter to
    ``(objectClass=*)``. A critical extension (``!name``) proxygate does not know is
    refused, as RFC 4516 asks.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("ldap", "ldaps"):
        raise ValueError(f"{url!r} is not an ldap:// or ldaps:// URL")
    hostport, _, query = rest.partition("/")
    if not hostport:
        raise ValueError(f"{url!r} names no host: write ldap://host:port/base-dn?uid?sub")
    if "@" in hostport:
        raise ValueError("an LDAP URL carries no credentials: use ldap_bind_dn and "
                         "ldap_bind_password")
    host, port = _split_hostport(hostport, 636 if scheme == "ldaps" else 389, url)
    parts = query.split("?")
    if len(parts) > 5:
        raise ValueError(f"{url!r} has more than the four '?' parts RFC 4516 allows")
    parts += [""] * (5 - len(parts))
    base_dn = unquote(parts[0])
    if not base_dn:
        raise ValueError(f"{url!r} has no base DN: write ldap://{hostport}/ou=People,dc=example,"
                         "dc=com?uid?sub")
    try:
        normalize_dn(base_dn)
    except ValueError as exc:
        raise ValueError(f"base DN {base_dn!r}: {exc}") from None
    attributes = [unquote(a).strip() for a in parts[1].split(",") if a.strip()]
    attribute = attributes[0] if attributes else "uid"
    if not _ATTRIBUTE.match(attribute):
        raise ValueError(f"{attribute!r} is not an LDAP attribute name")
    scope_name = unquote(parts[2]).strip().lower() or "sub"
    if scope_name not in _SCOPES:
        raise ValueError(f"scope {scope_name!r} must be base, one or sub")
    search_filter = unquote(parts[3]).strip() or "(objectClass=*)"
    if not search_filter.startswith("("):
        search_filter = f"({search_filter})"
    _check_filter(search_filter)
    for extension in filter(None, parts[4].split(",")):
        if extension.startswith("!"):
            raise ValueError(f"critical LDAP URL extension {unquote(extension)!r} is not supported")
    return LdapUrl(scheme, host, port, base_dn, attribute, _SCOPES[scope_name], search_filter)


def _split_hostport(hostport: str, default: int, url: str) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise ValueError(f"{url!r}: bad host")
    else:
        host, _, port_text = hostport.partition(":")
    host = unquote(host)
    if not host:
        raise ValueError(f"{url!r} names no host")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{url!r}: port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _check_filter(text: str) -> None:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                break
    if depth != 0 or not text.endswith(")"):
        raise ValueError(f"filter {text!r} has unbalanced parentheses")


def escape_filter_value(value: str) -> str:
    """RFC 4515 §3: ``*``, ``(``, ``)``, ``\\`` and NUL as ``\\XX``, so a value matches itself only.

    ``*)(uid=*`` becomes ``\\2a\\29\\28uid=\\2a``: one literal, odd, name that nobody has.
    """
    out = []
    for ch in value:
        if ch in "*()\\\x00":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def group_filter(user_dn: str, group_dn: str, *, nested: bool) -> str:
    """The filter that finds a membership.

    Plain (OpenLDAP and most servers): searched on the group's entry, which lists the
    user's DN in ``member`` (groupOfNames) or ``uniqueMember`` (groupOfUniqueNames).
    Nested (Active Directory): searched on the user's own entry, its ``memberOf``
    followed through groups of groups by the LDAP_MATCHING_RULE_IN_CHAIN rule.
    """
    if nested:
        return f"(memberOf:{IN_CHAIN}:={escape_filter_value(group_dn)})"
    value = escape_filter_value(user_dn)
    return f"(|(member={value})(uniqueMember={value}))"


def _split_unescaped(text: str, separators: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise ValueError("ends in a lone backslash")
    parts.append("".join(current))
    return parts


def _unescape_value(value: str) -> str:
    """An RFC 4514 attribute value, its ``\\,`` and ``\\2c`` escapes resolved."""
    raw = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            pair = value[i + 1:i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                raw.append(int(pair, 16))
                i += 3
                continue
            if i + 1 >= len(value):
                raise ValueError("ends in a lone backslash")
            raw.extend(value[i + 1].encode())
            i += 2
            continue
        raw.extend(ch.encode())
        i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("has an escape that is not UTF-8") from None


def normalize_dn(dn: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    """An RFC 4514 DN as comparable parts: names lower-cased, values unescaped and case-folded.

    ``uid=Alice,OU=People`` and ``UID=alice, ou=people`` compare equal, as directories
    compare them (the usual attributes match case-insensitively). Raises ValueError
    for text that is not a DN.
    """
    if not dn.strip():
        return ()
    rdns = []
    for rdn in _split_unescaped(dn, ",;"):
        pairs = []
        for ava in _split_unescaped(rdn, "+"):
            name, eq, value = ava.partition("=")
            name = name.strip()
            if not eq or not _ATTRIBUTE.match(name):
                raise ValueError(f"{ava.strip()!r} is not attribute=value")
            pairs.append((name.lower(), " ".join(_unescape_value(value.strip()).casefold().split())))
        rdns.append(tuple(sorted(pairs)))
    return tuple(rdns)
