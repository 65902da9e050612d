"""The Discord adapter: slash commands, mentions, buttons and embeds over discord.py."""
