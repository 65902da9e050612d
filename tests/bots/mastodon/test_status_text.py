"""Status HTML → text, against the HTML real Mastodon servers render (samples written by hand)."""

from __future__ import annotations

from bots.mastodon.status_text import status_text

MENTION = (
    '<span class="h-card" translate="no"><a href="https://example.social/@imagebot" '
    'class="u-url mention">@<span>imagebot</span></a></span>'
)
REMOTE_MENTION = (
    '<span class="h-card" translate="no"><a href="https://other.example/@bob" '
    'class="u-url mention">@<span>bob</span></a></span>'
)
LINK = (
    '<a href="https://example.com/some/long/path" target="_blank" rel="nofollow noopener" '
    'translate="no"><span class="invisible">https://</span><span class="ellipsis">'
    'example.com/some/lon</span><span class="invisible">g/path</span></a>'
)
HASHTAG = (
    '<a href="https://example.social/tags/aiart" class="mention hashtag" rel="tag">'
    "#<span>aiart</span></a>"
)


def test_mentions_are_removed_and_the_request_stays() -> None:
    html = f"<p>{MENTION} draw me a fox --steps 4</p>"
    assert status_text(html) == "draw me a fox --steps 4"


def test_every_mention_is_removed_wherever_it_stands() -> None:
    html = f"<p>{MENTION} {REMOTE_MENTION} could you draw me a cat for {REMOTE_MENTION}?</p>"
    assert status_text(html) == "could you draw me a cat for ?"


def test_links_stay_as_their_full_text() -> None:
    html = f"<p>{MENTION} draw me a house like {LINK}</p>"
    assert status_text(html) == "draw me a house like https://example.com/some/long/path"


def test_hashtags_stay_as_words() -> None:
    assert status_text(f"<p>{MENTION} draw me a fox {HASHTAG}</p>") == "draw me a fox #aiart"


def test_line_breaks_and_paragraphs_become_newlines() -> None:
    html = f"<p>{MENTION} draw me a fox<br>in the snow<br />at night</p><p>--steps 4</p>"
    assert status_text(html) == "draw me a fox\nin the snow\nat night\n--steps 4"


def test_entities_are_decoded() -> None:
    html = f"<p>{MENTION} draw me salt &amp; pepper &lt;3 &quot;quoted&quot; it&#39;s</p>"
    assert status_text(html) == 'draw me salt & pepper <3 "quoted" it\'s'


def test_plain_text_mentions_of_other_servers_are_removed_but_emails_stay() -> None:
    html = "<p>@imagebot@example.social draw me a letter to me@mail.example.com</p>"
    assert status_text(html) == "draw me a letter to me@mail.example.com"


def test_empty_and_odd_html_do_not_raise() -> None:
    assert status_text("") == ""
    assert status_text("<p><span>unclosed") == "unclosed"
    assert status_text(f"<p>{MENTION}</p>") == ""
