"""Prompt challenges: a theme on a schedule, entries made with ``/dream --challenge``, votes read
from each platform, kudos prizes paid once through the horde, and results posted.

``ChallengeRunner.advance`` does every step that is due; ``ChallengeScheduler`` (APScheduler with a
job store in the bot's database) calls it at each phase time and again at start for missed ones.
"""
