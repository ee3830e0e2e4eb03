"""{Root}/ui/index.html: the jobs page's files, read once at start, each answered with a strict Content-Security-Policy.

The page holds no data: it reads and acts through the plugin's own routes, from the browser, with the
user's credentials, so the site's rules judge each of its requests as any client's (README, Access).
"""
import pathlib

from ..web import Redirect, Response

STATIC = pathlib.Path(__file__).resolve().parent / "static"
# Nothing but the page's own files: no inline script or style, no other origin, no frame, no form elsewhere.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}
FILES = {"index.html": ("index.html", "text/html; charset=utf-8"), "app.js": ("app.js", "text/javascript; charset=utf-8"),
         "style.css": ("style.css", "text/css; charset=utf-8")}


class JobsPage:
    """The page's routes; `files` maps a file's name to (bytes, MIME type)."""

    def __init__(self, root, files=None):
        self._root = root
        self._files = files if files is not None else {
            name: ((STATIC / file).read_bytes(), mime) for name, (file, mime) in FILES.items()}

    def routes(self):
        """(suffix under {Root}, handlers): the page, its files, and {Root}/ui sent to the page.

        Orthanc hands {Root}/ui/ over as {Root}/ui (it drops a trailing slash), so no relative
        redirection serves both: the page's own path is given whole.
        """
        served = [("/ui/" + name, {"GET": self._serving(name)}) for name in self._files]
        page = Redirect(self._root + "/ui/index.html")
        return [("/ui", {"GET": lambda request: page})] + served

    def _serving(self, name):
        body, mime = self._files[name]
        response = Response(body, mime, HEADERS)
        return lambda request: response
