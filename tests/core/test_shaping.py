"""Replies cut to a platform's room: captions, censorship notes, image chunks, sizes."""

from __future__ import annotations

from core.contract import PlatformLimits
from core.messages import OutImage, Reply
from core.shaping import caption, clip, shape, split_text


def reply(images: int = 1, *, censored: int = 0, text: str = "“a fox”") -> Reply:
    pictures = tuple(
        OutImage(data=bytes([n]) * 10, alt_text="AI-generated image: a fox", censored=n < censored)
        for n in range(images)
    )
    return Reply(
        "gen-1",
        text=text,
        images=pictures,
        metadata={"style": "anime", "model": "stable_diffusion", "seed": "42", "kudos": 12.5},
    )


def test_caption_carries_prompt_details_and_mention() -> None:
    assert caption(reply(), mention="@ann") == (
        "@ann “a fox”\nstyle: anime · model: stable_diffusion · seed: 42 · kudos: 12.5"
    )


def test_an_error_is_one_line_with_the_mention() -> None:
    posts = shape(Reply("gen-1", error="unknown style 'animu'"), PlatformLimits(), mention="@ann")
    assert [post.text for post in posts] == ["@ann unknown style 'animu'"]
    assert posts[0].images == ()


def test_censored_images_get_a_plain_note_once() -> None:
    assert "censored 1 of 2" in caption(reply(2, censored=1))
    assert "censored the images" in caption(reply(2, censored=2))
    # The service's text already says it: no second note.
    said = caption(reply(1, censored=1, text="“a fox” (1 image censored by the horde)"))
    assert said.count("censored") == 1


def test_images_beyond_the_limit_go_to_numbered_follow_ups() -> None:
    posts = shape(reply(10), PlatformLimits(max_images=4), mention="@ann")
    assert [len(post.images) for post in posts] == [4, 4, 2]
    assert posts[1].text == "@ann (2/3)"
    assert [image.data[0] for post in posts for image in post.images] == list(range(10))


def test_text_and_alt_text_are_clipped_and_oversized_images_left_out_with_a_note() -> None:
    limits = PlatformLimits(max_text=60, max_alt_text=10, max_upload_bytes=10)
    big = Reply(
        "gen-1",
        text="x" * 200,
        images=(OutImage(b"1" * 11), OutImage(b"2" * 10, alt_text="y" * 50)),
    )
    posts = shape(big, limits)
    assert len(posts) == 1
    assert len(posts[0].text) <= 60
    assert "too large" in posts[0].text
    assert [image.data for image in posts[0].images] == [b"2" * 10]
    assert posts[0].images[0].alt_text == "y" * 9 + "…"


def test_clip() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "ab…"
    assert clip("abc", 0) == ""


def test_split_text_cuts_at_lines_and_splits_overlong_lines() -> None:
    assert split_text("a\nb\nc", 3, most=4) == ["a\nb", "c"]
    assert split_text("abcdefg", 3, most=4) == ["abc", "def", "g"]
    assert split_text("", 10, most=4) == [""]
    assert len(split_text("\n".join("abc" for _ in range(20)), 3, most=4)) == 4
