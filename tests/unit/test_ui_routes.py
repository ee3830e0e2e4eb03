import re

from advanced_rest import web
from advanced_rest.ui import routes

PAGE = routes.JobsPage("/advanced-rest")


def _handlers():
    return dict(PAGE.routes())


def test_every_file_is_served_with_the_strict_policy():
    handlers = _handlers()
    for name, (_, mime) in routes.FILES.items():
        response = handlers["/ui/" + name]["GET"](None)
        assert response.mime == mime
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'self';")
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_short_path_is_sent_to_the_page_under_its_root():
    assert _handlers()["/ui"]["GET"](None) == web.Redirect("/advanced-rest/ui/index.html")
    assert dict(routes.JobsPage("/pacs/x").routes())["/ui"]["GET"](None) == web.Redirect("/pacs/x/ui/index.html")


def test_the_page_has_no_inline_script_style_or_handler():
    html = (routes.STATIC / "index.html").read_text()
    assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", html))
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from elsewhere


def test_the_script_never_parses_received_text_as_html():
    script = (routes.STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "createContextualFragment", "setTimeout(\"", "srcdoc"):
        assert sink not in script, sink
    assert "http://" not in script and "https://" not in script  # every request goes to the page's own server
