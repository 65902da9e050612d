"""The Mastodon adapter: mentions in (streaming, polling, catch-up), replies with media out."""
