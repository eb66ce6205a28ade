# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets in libvirt domain XML: find them, replace them, scrub them from free text (private).

Pure logic: imports neither ``libvirt`` nor ``AnsibleModule``; lxml is imported guarded.

The modules read the inactive XML with ``VIR_DOMAIN_XML_SECURE`` (a redefine from XML read
without it would drop the passwords), so everything a person or a log sees of that XML --
``--diff``, ``-vvv``, verification messages, libvirt errors quoting it -- goes through here.
docs/secrets.md lists every class handled, with the libvirt 9.0 function that reveals it.

What ``VIR_DOMAIN_XML_SECURE`` reveals (libvirt 9.0 src/conf/domain_conf.c; these are the only
two places that test ``VIR_DOMAIN_DEF_FORMAT_SECURE``):

* ``<graphics type='vnc'|'spice' passwd='...'>`` (virDomainGraphicsAuthDefFormatAttr);
* ``<source protocol='http'|'https'><cookies><cookie name='n'>VALUE</cookie>`` of network
  disks, their backing stores and mirrors (virDomainDiskSourceFormatNetworkCookies).

What users put elsewhere, which libvirt prints without the flag, and which is handled by name
and pattern: ``<qemu:arg>`` (and ``bhyve:arg``/``xen:arg``) values such as
``secret,id=s0,data=...`` or ``password=...``; ``<qemu:env>`` (and any namespaced name/value
element such as ``<qemu:property>``) whose name looks like a password, token or key;
``<metadata>`` and every other foreign-namespace element (secret-like element or attribute
names, ``password=``/``token: ``/JSON ``"password": "..."`` text); ``<description>``,
``<title>``, ``<os><cmdline>``, ``<sysinfo>`` entries, comments; the ``query`` of network disk
sources (``token=``, ``sig=``, ``X-Amz-Signature=``); and ``scheme://user:password@`` anywhere.

Speed: candidate elements are selected by lxml's tag filter (in C); Python only looks at those,
a regular expression runs only on free-text values that contain ``=``, ``:`` or ``@``, and the
walks over every attribute (``passwd`` outside <graphics>, ``://user:pw@`` anywhere) run only
when a substring search of the document text says they can find something.
"""

from __future__ import annotations

import re

try:
    from lxml import etree

    HAS_LXML = True
    LXML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = exc

#: What every secret value is replaced with.
REDACTED = "********"

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
BHYVE_NS = "http://libvirt.org/schemas/domain/bhyve/1.0"
XEN_NS = "http://libvirt.org/schemas/domain/xen/1.0"

# Command-line pass-through elements whose value is one argv element of the hypervisor process.
_ARG_TAGS = frozenset("{%s}arg" % ns for ns in (QEMU_NS, BHYVE_NS, XEN_NS))
_ENV_TAG = "{%s}env" % QEMU_NS

# Attributes that hold a secret wherever they appear (graphics passwd is the libvirt one).
_SECRET_ATTRS = frozenset(("passwd", "password"))

# Values that are switches, not secrets (QEMU's ``-vnc :0,password=on``).
_FLAG_VALUES = frozenset(("on", "off", "yes", "no", "true", "false", REDACTED))

# --- secret-like names -------------------------------------------------------------------------

_NAME_SUBSTRINGS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
    "privatekey", "private_key", "private-key", "accesskey", "access_key", "access-key",
    "credential", "cookie", "authorization",
)
_NAME_WORDS = frozenset(("pass", "pwd", "pw", "key", "psk", "sig", "signature", "pin", "creds", "otp"))
# Names that contain a secret-like word but name something else: the working directory,
# libvirt's password expiry, QEMU references to a secret object (password-secret=sec0,
# key-secret=..., keyid=...), key maps.
_NAME_NOT_SECRET = frozenset(("pwd", "oldpwd", "passwdvalidto", "keyid", "keymap", "secretid", "keyformat"))
_NAME_NOT_SECRET_SUFFIX = ("-secret", "file", "path", "dir", "sock", "socket", "validto", "format", "type")
_NAME_SPLIT = re.compile(r"[^a-z0-9]+")
_name_cache = {}


def secret_name(name):
    """Whether ``name`` (an attribute, element, variable or query key) names a secret.

    ``{ns}local`` and ``prefix:local`` are judged by their local part, case-insensitively:
    ``DB_PASSWORD``, ``api-token``, ``X-Amz-Signature``, ``SSH_KEY`` and ``sig`` do; ``LANG``,
    ``PWD``, ``keymap``, ``passwdValidTo``, ``password-secret`` (QEMU's reference to a secret
    object) and ``PASSWORD_FILE`` (a path) do not.
    """
    if not name:
        return False
    cached = _name_cache.get(name)
    if cached is not None:
        return cached
    n = name.rsplit("}", 1)[-1].rsplit(":", 1)[-1].strip("\"' ").lower()
    if n in _NAME_NOT_SECRET or n.startswith("tls-") or n.endswith(_NAME_NOT_SECRET_SUFFIX):
        result = False
    elif any(s in n for s in _NAME_SUBSTRINGS) or n.endswith(("pw", "pwd")):
        result = True
    else:
        result = any(w in _NAME_WORDS for w in _NAME_SPLIT.split(n))
    if len(_name_cache) < 4096:
        _name_cache[name] = result
    return result


# --- free-text patterns ----------------------------------------------------------------------

# A key followed by '=' or ':' (the value is matched separately, so a key that is not secret
# consumes nothing: ``rbd:pool/img:id=admin:key=AQB...`` still finds ``key=``).
_KEY_TEXT = re.compile(r"""(?P<q>["']?)(?P<k>[A-Za-z_][\w.-]*)(?P=q)(?P<sep>[ \t]*[=:][ \t]*)""")
_KEY_ARG = re.compile(r"(?P<q>)(?P<k>[A-Za-z_][\w.-]*)(?P<sep>=)")
# Values in free text: a quoted string (its content is replaced, the quotes stay), an HTTP
# authorization scheme and its credentials, or a bare word.
_VALUE_TEXT = re.compile(
    r""""(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>[^']*)'|(?:(?:Bearer|Basic|Digest|Token)[ \t]+)?(?P<bare>[^\s,;&'"<>]+)""",
    re.IGNORECASE)
# Values in a QEMU option string (``-object secret,id=s0,data=...``): up to the next single
# comma (',,' is QEMU's escaped comma), or a ':' that starts the next ``key=`` (rbd strings).
_VALUE_ARG = re.compile(r"(?P<bare>(?:,,|[^,:]|:(?![\w.-]+=))+)")
# scheme://user:password@host -- the password may itself contain ':' or '@' (the last '@'
# before the path ends the user part).
_URI_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#'\"<>@:]*:)(?P<pw>[^\s/?#'\"<>]*)@")
# Fragments of libvirt XML quoted in messages: cookie values and secret name/value pairs.
_XML_COOKIE = re.compile(r"(<cookie\b[^>]*>)([^<]+)(</cookie>)")
_XML_NAME_VALUE = re.compile(r"""\bname=(["'])(?P<n>[^"']*)\1(?P<mid>\s+(?:type=(["'])[^"']*\4\s+)?value=)(["'])(?P<v>[^"']*)\5""")


def _keep(value):
    return not value or value.lower() in _FLAG_VALUES


def _scrub_kv(s, arg, found, cmdline=False):
    """Secret values of ``key=value`` / ``key: value`` pairs in ``s`` replaced (``arg``: QEMU
    option syntax; ``cmdline``: a hypervisor argument, where ``data`` is QEMU's secret-object
    payload also as a JSON key). Values found are added to ``found`` (a set or None)."""
    key_re = _KEY_ARG if arg else _KEY_TEXT
    out = []
    pos = last = 0
    n = len(s)
    while pos < n:
        m = key_re.search(s, pos)
        if m is None:
            break
        pos = m.end()
        key = m.group("k")
        if not (secret_name(key) or (key.lower() == "data" and (arg or cmdline or "=" in m.group("sep")))):
            continue
        value_re = _VALUE_ARG if arg and s[pos:pos + 1] not in ('"', "'") else _VALUE_TEXT
        v = value_re.match(s, pos)
        if v is None:
            continue
        group = next(g for g in ("dq", "sq", "bare") if v.groupdict().get(g) is not None)
        value = v.group(group)
        start, end = v.span(group)
        pos = v.end()
        if _keep(value):
            continue
        if found is not None:
            found.add(value)
        out.append(s[last:start])
        out.append(REDACTED)
        last = end
    if not out:
        return s
    out.append(s[last:])
    return "".join(out)


def _scrub_uri(s, found):
    if "@" not in s or "://" not in s:
        return s

    def repl(m):
        pw = m.group("pw")
        if not pw or pw == REDACTED:
            return m.group(0)
        if found is not None:
            found.add(pw)
        return m.group("pre") + REDACTED + "@"

    return _URI_USERINFO.sub(repl, s)


def _scrub_text(s, found=None, arg=False, cmdline=False):
    """Free text (metadata, description, comments, hypervisor arguments): secret pairs and URI
    passwords replaced."""
    if not s:
        return s
    if "=" in s or (":" in s and not arg):
        s = _scrub_kv(s, arg, found, cmdline)
    return _scrub_uri(s, found)


def _scrub_arg(value, found=None):
    """One hypervisor argv element: QEMU ``key=value,...`` syntax, or JSON (``-object {...}``)."""
    if value.lstrip().startswith(("{", "[")):
        return _scrub_text(value, found, arg=False, cmdline=True)
    return _scrub_text(value, found, arg=True)


def _scrub_query(query, found):
    """A URL query (``a=1&token=x``) with the values of secret-like keys replaced."""
    if not query or "=" not in query:
        return query
    parts = re.split(r"([&;])", query)
    changed = False
    for i in range(0, len(parts), 2):
        key, eq, value = parts[i].partition("=")
        if eq and value and value != REDACTED and secret_name(_unquote(key)):
            if found is not None:
                found.add(value)
            parts[i] = key + "=" + REDACTED
            changed = True
    return "".join(parts) if changed else query


def _unquote(s):
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), s) if "%" in s else s


def redact_uri(uri):
    """``uri`` with the password of every ``scheme://user:password@`` replaced by REDACTED, and
    the values of secret-like query keys (``?token=...``) too.

    ``qemu+ssh://root:pw@hv1/system`` -> ``qemu+ssh://root:********@hv1/system``; a URI without
    a password comes back unchanged; None stays None, other objects are converted with str().
    """
    if uri is None:
        return None
    if not isinstance(uri, str):
        uri = str(uri)
    uri = _scrub_uri(uri, None)
    if "?" in uri:
        head, _sep, query = uri.partition("?")
        query, hashmark, frag = query.partition("#")
        uri = head + "?" + _scrub_query(query, None) + hashmark + frag
    return uri


def uri_secrets(uri):
    """The secret values :func:`redact_uri` would replace in ``uri`` (passwords, secret query values)."""
    found = set()
    if uri:
        _scrub_uri(str(uri), found)
        if "?" in uri:
            _scrub_query(str(uri).partition("?")[2].partition("#")[0], found)
    return found


# --- the tree walk ---------------------------------------------------------------------------

# Elements that can hold a secret, selected by lxml's C tag filter (a Python loop over every
# element costs 2-3 times more): the core elements below, the hypervisor namespaces, comments.
# <metadata> and other foreign top-level elements are walked whole by their handlers.
_KNOWN_NS = (QEMU_NS, BHYVE_NS, XEN_NS)
_CORE_TAGS = ("graphics", "cookie", "source", "description", "title", "cmdline", "entry", "secret", "metadata")
_ITER_TAGS = _CORE_TAGS + tuple("{%s}*" % ns for ns in _KNOWN_NS) + ((etree.Comment,) if HAS_LXML else ())
# An attribute named passwd/password in the text: on a core element other than <graphics> it
# sends the walk down the slow path that looks at every element's attributes.
_TAG_NAME = re.compile(r"<([^\s/>!?]+)")

_NET_URL_PROTOCOLS = frozenset(("http", "https", "ftp", "ftps", "tftp"))
_FREE_TEXT_TAGS = frozenset(("description", "title", "cmdline", "entry"))


def _local(tag):
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _set_text(el, value):
    # Keep a CDATA section a CDATA section (the parser keeps them: strip_cdata=False).
    if b"<![CDATA[" in etree.tostring(el, with_tail=False) and "]]>" not in value:
        el.text = etree.CDATA(value)
    else:
        el.text = value


def _redact_text(el, found):
    """The element's whole text is a secret."""
    txt = el.text
    if txt is not None and txt.strip() and txt != REDACTED:
        if found is not None:
            found.add(txt)
            found.add(txt.strip())
        _set_text(el, REDACTED)


def _scrub_own_text(el, found, arg=False):
    txt = el.text
    if txt:
        new = _scrub_text(txt, found, arg)
        if new is not txt and new != txt:
            _set_text(el, new)


def _redact_attr(el, name, found):
    value = el.get(name)
    if value and value != REDACTED:
        if found is not None:
            found.add(value)
        el.set(name, REDACTED)


def _foreign(el, found):
    """An element of a foreign namespace (<metadata> content, qemu:*, bhyve:*, xen:*, lxc:*)."""
    tag = el.tag
    if tag in _ARG_TAGS:
        value = el.get("value")
        if value:
            prev = el.getprevious()
            while prev is not None and not isinstance(prev.tag, str):
                prev = prev.getprevious()
            pv = prev.get("value") if prev is not None and prev.tag in _ARG_TAGS else None
            if pv and pv.startswith("-") and "=" not in pv and secret_name(pv.lstrip("-")):
                _redact_attr(el, "value", found)  # '--password' 'VALUE'
            else:
                new = _scrub_arg(value, found)
                if new != value:
                    el.set("value", new)
        return
    # name/value pairs: <qemu:env name='DB_PASSWORD' value='...'/>, <qemu:property>, and any
    # <x:entry name|key='token'>...</x:entry> in metadata.
    paired = el.get("value") is not None or bool(el.text and el.text.strip())
    pair_name = el.get("name") or (el.get("key") if paired else None)
    if pair_name is not None and secret_name(pair_name):
        if el.get("value") is not None:
            _redact_attr(el, "value", found)
        if len(el) == 0:
            _redact_text(el, found)
    if tag == _ENV_TAG:
        value = el.get("value")
        if value and value != REDACTED:
            new = _scrub_text(value, found)  # LANG=C stays; http_proxy=http://u:pw@p/ does not
            if new != value:
                el.set("value", new)
        return
    for name, value in el.attrib.items():
        if not value or value == REDACTED or name == "name" or (name == "key" and paired):
            continue
        if secret_name(name):
            _redact_attr(el, name, found)
        else:
            new = _scrub_text(value, found)
            if new != value:
                el.set(name, new)
    if secret_name(_local(tag)) and len(el) == 0:
        _redact_text(el, found)
    else:
        _scrub_own_text(el, found)
    for child in el:  # mixed content: <x:note>text <x:b/> password=tail</x:note>
        if child.tail and ("=" in child.tail or ":" in child.tail):
            new = _scrub_text(child.tail, found)
            if new != child.tail:
                child.tail = new


def _comment(el, found):
    txt = el.text
    if txt:
        new = _scrub_text(txt, found)
        if new != txt:
            el.text = new.replace("--", "- -")


def _subtree(top, found):
    """Everything under <metadata> or a foreign top-level element: foreign rules, whatever the
    namespace (un-namespaced content of a hand-written or restored <metadata> included)."""
    for el in top.iterdescendants():
        if isinstance(el.tag, str):
            _foreign(el, found)
        # comments are handled by the main walk


def _core(el, tag, found):
    if tag == "graphics":
        for name in _SECRET_ATTRS:
            if el.get(name) is not None:
                _redact_attr(el, name, found)
    elif tag == "cookie" or tag == "secret":
        # <cookies><cookie name='n'>VALUE</cookie> (a <secret> never has text in domain XML;
        # when it does, it is a value)
        if len(el) == 0:
            _redact_text(el, found)
    elif tag == "source":
        query = el.get("query")
        if query:
            new = _scrub_query(query, found)
            if new != query:
                el.set("query", new)
        name = el.get("name")
        if name and "?" in name and el.get("protocol") in _NET_URL_PROTOCOLS:
            path, _sep, query = name.partition("?")
            new = _scrub_query(query, found)
            if new != query:
                el.set("name", path + "?" + new)
    elif tag == "metadata":
        _subtree(el, found)
    elif tag == "entry" and secret_name(el.get("name")):
        _redact_text(el, found)  # <sysinfo type='fwcfg'><entry name='opt/x/token'>
    elif tag in _FREE_TEXT_TAGS:
        _scrub_own_text(el, found)


def _needs_passwd_scan(text):
    # str.find runs in C; a regular expression over the whole document costs ~20 times more.
    for word in ("passwd", "password"):
        pos = text.find(word)
        while pos >= 0:
            end = pos + len(word)
            if pos > 0 and text[pos - 1].isspace() and text[end:end + 8].lstrip()[:1] == "=":
                start = text.rfind("<", 0, pos)
                tag = _TAG_NAME.match(text, start) if start >= 0 else None
                if tag is None or (tag.group(1) != "graphics" and ":" not in tag.group(1)):
                    return True
            pos = text.find(word, end)
    return False


def _walk(root, found, text=None):
    if text is None:
        text = etree.tostring(root, encoding="unicode")
    for el in root.iter(*_ITER_TAGS):
        tag = el.tag
        if tag.__class__ is not str:
            if tag is etree.Comment:
                _comment(el, found)
        elif tag[0] == "{":
            _foreign(el, found)
        else:
            _core(el, tag, found)
    # foreign top-level elements libvirt's own namespaces do not cover (lxc:, test:, vmware:,
    # or anything a hand-written file has)
    for el in root:
        tag = el.tag
        if tag.__class__ is str and tag[0] == "{" and tag[1:].split("}", 1)[0] not in _KNOWN_NS:
            _foreign(el, found)
            _subtree(el, found)
    slow_passwd = ("passw" in text or "PASSW" in text) and _needs_passwd_scan(text)
    slow_uri = "://" in text and "@" in text
    if not (slow_passwd or slow_uri):
        return
    for el in root.iter():
        tag = el.tag
        if tag.__class__ is not str:
            continue
        for name, value in el.items():
            if slow_passwd and name in _SECRET_ATTRS and tag[0] != "{":
                _redact_attr(el, name, found)
            elif slow_uri and "@" in value:
                new = _scrub_uri(value, found)
                if new != value:
                    el.set(name, new)
        if slow_uri:
            txt = el.text
            if txt and "@" in txt:
                new = _scrub_uri(txt, found)
                if new != txt:
                    _set_text(el, new)
            txt = el.tail
            if txt and "@" in txt:
                new = _scrub_uri(txt, found)
                if new != txt:
                    el.tail = new


def redact_tree(root):
    """Replace, in place, every secret in the lxml element ``root`` (a <domain>, or any part of
    one such as a single device) by REDACTED. Pass a copy: the tree is changed.

    Only secret values change: element order, attributes and their order, namespaces,
    comments, CDATA sections and whitespace stay as they were. Returns ``root``.
    """
    _walk(root, None)
    return root


def _parser():
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_blank_text=False, remove_comments=False, remove_pis=False,
        strip_cdata=False,
    )


def _parse(xml_text):
    if isinstance(xml_text, str):
        xml_text = xml_text.encode("utf-8")
    return etree.fromstring(xml_text, _parser())


def redact_xml(xml_text):
    """Domain XML text (str or bytes) with every secret replaced by REDACTED, as a str.

    Parsed without entities, DTDs or network access; comments and CDATA are kept; the result
    is lxml's serialisation of the same tree (no XML declaration), identical to the input but
    for the secret values. Text that is not well-formed XML (or when lxml is missing) is not
    returned as it is: it goes through :func:`scrub`, which removes what its patterns find.
    """
    if xml_text is None:
        return None
    if not HAS_LXML:  # pragma: no cover
        return scrub(xml_text if isinstance(xml_text, str) else xml_text.decode("utf-8", "replace"))
    try:
        root = _parse(xml_text)
    except (etree.XMLSyntaxError, ValueError):
        text = xml_text if isinstance(xml_text, str) else xml_text.decode("utf-8", "replace")
        return scrub(text)
    _walk(root, None, xml_text if isinstance(xml_text, str) else xml_text.decode("utf-8", "replace"))
    return etree.tostring(root, encoding="unicode")


def secret_values(xml_text):
    """The set of every secret value in a document (str, bytes or an lxml element, which is not
    changed): the exact strings :func:`redact_xml` replaces, so that callers can scrub them
    from free text (libvirt errors quoting the XML) with :func:`scrub` and tests can assert
    that none of them is shown. Empty for XML that does not parse."""
    if xml_text is None or not HAS_LXML:
        return set()
    if isinstance(xml_text, (str, bytes)):
        try:
            root = _parse(xml_text)
        except (etree.XMLSyntaxError, ValueError):
            return set()
    else:
        root = etree.fromstring(etree.tostring(xml_text), _parser())
    found = set()
    _walk(root, found, xml_text if isinstance(xml_text, str) else None)
    found.discard("")
    found.discard(REDACTED)
    return found


_secret_re_cache = {}


def _secrets_re(secrets):
    key = frozenset(s for s in secrets if s and s != REDACTED)
    cached = _secret_re_cache.get(key)
    if cached is not None:
        return cached
    alts = []
    for s in sorted(key, key=len, reverse=True):
        # A value of 1-3 characters is replaced only where it stands alone, so that a VNC
        # password 'ab' does not turn every 'ab' of a message into asterisks.
        alts.append(re.escape(s) if len(s) > 3 else r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(s))
    compiled = re.compile("|".join(alts)) if alts else None
    if len(_secret_re_cache) > 256:
        _secret_re_cache.clear()
    _secret_re_cache[key] = compiled
    return compiled


def scrub(text, secrets=()):
    """Free text (a message, a libvirt error, a log line) safe to show.

    Every value in ``secrets`` (e.g. from :func:`secret_values`) is replaced wherever it
    appears, longest first (values of 1-3 characters only where they stand alone); then
    inline secrets: ``password=x``, ``passwd='x'``, ``data=x``, ``token: x``, JSON
    ``"api_key": "x"``, ``<cookie name='n'>x</cookie>``, ``name='DB_PASSWORD' value='x'`` and
    ``scheme://user:x@``. None stays None.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if secrets:
        pattern = _secrets_re(secrets)
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    if "<cookie" in text:
        text = _XML_COOKIE.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    if "value=" in text:
        text = _XML_NAME_VALUE.sub(_name_value_repl, text)
    return _scrub_text(text)


def _name_value_repl(m):
    if not secret_name(m.group("n")) or _keep(m.group("v")):
        return m.group(0)
    q = m.group(5)
    return m.group(0)[:m.start("v") - m.start(0)] + REDACTED + q


_PATH_LAST = re.compile(r"(\{[^}]*\})?([^/\[{}]+)(\[\d+\])?$")


def shown(attr_name, value, element_tag=None, path=None, attrs=None):
    """One value safe to print in a difference message, or None for None.

    ``attr_name`` is the attribute (``''`` or None for the element's text), ``element_tag``
    the element's tag (``graphics``, ``{ns}env`` or ``qemu:env``; taken from the last step of
    ``path`` when not given) and ``attrs`` (optional) the element's other attributes, which
    decide whether a ``<qemu:env>`` or ``<qemu:property>`` value is a secret (without them it
    is always treated as one). Core libvirt attributes are shown as they are except
    ``passwd``/``password``, a network source's ``query`` and URI passwords, so file names
    stay readable; text and foreign-namespace values are scrubbed like :func:`scrub`. Without
    any element context the value is scrubbed as free text.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if value == REDACTED:
        return value
    attr_name = attr_name or ""
    if element_tag is None and path:
        m = _PATH_LAST.search(path.rstrip("/").rsplit("/text()", 1)[0].rsplit("/@", 1)[0])
        if m:
            element_tag = (m.group(1) or "") + m.group(2)
    local_attr = _local(attr_name).lower() if attr_name else ""
    if local_attr in _SECRET_ATTRS:
        return REDACTED
    if element_tag is None:
        return REDACTED if secret_name(attr_name) else _scrub_text(value)
    local = _local(element_tag)
    foreign = element_tag.startswith("{") or ":" in element_tag or (path is not None and "/metadata" in path)
    if not foreign:
        if not attr_name:
            if local in ("cookie", "secret"):
                return REDACTED
            if local == "entry" and attrs and secret_name(attrs.get("name")):
                return REDACTED
            return _scrub_text(value) if local in _FREE_TEXT_TAGS else _scrub_uri(value, None)
        if local == "source" and local_attr in ("query", "name") and ("=" in value):
            if local_attr == "query":
                return _scrub_uri(_scrub_query(value, None), None)
            if "?" in value:
                head, _sep, query = value.partition("?")
                return head + "?" + _scrub_query(query, None)
        return _scrub_uri(value, None)
    element = element_tag
    if element.startswith("{"):
        is_arg = element in _ARG_TAGS
        is_env = element == _ENV_TAG
    else:
        is_arg = local == "arg" and element.split(":")[0] in ("qemu", "bhyve", "xen")
        is_env = element == "qemu:env"
    if is_arg and attr_name == "value":
        return _scrub_arg(value)
    if attr_name == "value" or not attr_name:
        if attrs is None and (is_env or (attr_name == "value" and local in ("property", "entry"))):
            return REDACTED
        pair_name = (attrs or {}).get("name") or (attrs or {}).get("key")
        if pair_name is not None and secret_name(pair_name):
            return REDACTED
        if not attr_name and secret_name(local):
            return REDACTED
        if is_env:
            return _scrub_uri(value, None)
    elif attr_name in ("name", "key"):
        return _scrub_uri(value, None)
    elif secret_name(attr_name):
        return REDACTED
    return _scrub_text(value)
