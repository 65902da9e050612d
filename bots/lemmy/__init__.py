"""The Lemmy adapter: mentions and replies to the bot in, comment replies with images out."""
