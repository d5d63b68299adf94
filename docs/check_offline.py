"""Fail if a page of the built site loads anything from another host.

    python docs/check_offline.py [docs/_build/html]

Every script, stylesheet, icon, image, frame or font that a page (or one of the site's
CSS files) loads must come from the site itself, so that the documentation reads offline.
Plain links (``<a href="https://...">``) are not loads and are allowed. ``docs/build.sh``
runs this after the build.
"""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

# A URL that names a host: a scheme followed by //, or a protocol-relative //host.
_OUTSIDE = re.compile(r"^\s*([a-z][a-z0-9+.-]*:)?//", re.I)
# <link rel=...> values that name a related page rather than load a resource.
_NAVIGATION_RELS = {"alternate", "author", "canonical", "help", "index", "license", "next"}
_NAVIGATION_RELS |= {"prev", "search", "top", "up", "first", "last", "bookmark"}
# Attributes whose URL a browser fetches while showing the page.
_LOADED = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "frame": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),
}
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""", re.I)


def _outside(url):
    return any(_OUTSIDE.match(part.split()[0]) for part in url.split(",") if part.strip())


class _Loads(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.urls = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        names = _LOADED.get(tag, ())
        if tag == "link":
            rels = set(attrs.get("rel", "").lower().split())
            names = () if rels and rels <= _NAVIGATION_RELS else ("href",)
        self.urls += [attrs[name] for name in names if name in attrs]
        if "style" in attrs:
            self.urls += css_urls(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:  # CSS, and any tag written inside <style> for good measure
            nested = _Loads()
            nested.feed(data)
            self.urls += css_urls(data) + nested.urls


def css_urls(text):
    """The URLs a piece of CSS loads (``url(...)`` and ``@import``)."""
    return [a or b for a, b in _CSS_URL.findall(text)]


def outside_loads(root):
    """``(file, url)`` for every resource that a file under ``root`` loads from another
    host (HTML pages and CSS files)."""
    root = Path(root)
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix == ".html":
            parser = _Loads()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            urls = parser.urls
        elif path.suffix == ".css":
            urls = css_urls(path.read_text(encoding="utf-8", errors="replace"))
        else:
            continue
        found += [(path.relative_to(root), url) for url in urls if _outside(url)]
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else Path(__file__).resolve().parent / "_build" / "html")
    if not any(root.glob("*.html")):
        print(f"check_offline: no HTML pages in {root}", file=sys.stderr)
        return 2
    found = outside_loads(root)
    for path, url in found:
        print(f"check_offline: {path} loads {url}", file=sys.stderr)
    if found:
        print(
            f"check_offline: {len(found)} resource(s) from another host: the site must "
            "read offline.",
            file=sys.stderr,
        )
        return 1
    print(f"check_offline: no page under {root} loads anything from another host.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
