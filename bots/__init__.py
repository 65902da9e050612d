"""Platform adapters (Discord, Mastodon, Lemmy, Reddit, console) and the composition root.

Nothing imports ``bots``; adapters hold no business logic.
"""
