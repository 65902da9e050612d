"""What a channel allows, applied in core so no adapter can get it wrong.

For now only the NSFW rule. A channel that does not allow NSFW always sends ``nsfw: false,
censor_nsfw: true``, whatever the user typed (``--nsfw`` there only earns a warning). A channel
that allows NSFW still defaults to safe (``nsfw: false, censor_nsfw: true``); ``--nsfw`` there
sends ``nsfw: true, censor_nsfw: false``. Defaulting to safe even where NSFW is allowed means an
NSFW result is always something a user asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.unset import UNSET, Unset


@dataclass(frozen=True, slots=True)
class NsfwDecision:
    """The two horde flags to send, and a warning for the user when their ask was overruled."""

    nsfw: bool
    censor_nsfw: bool
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """The policy facts of the channel a request came from."""

    nsfw_allowed: bool = False

    def nsfw(self, asked: bool | Unset = UNSET) -> NsfwDecision:
        """The NSFW flags for a request where the user asked ``asked`` (``--nsfw``)."""
        if asked is True and self.nsfw_allowed:
            return NsfwDecision(nsfw=True, censor_nsfw=False)
        if asked is True:
            return NsfwDecision(
                nsfw=False,
                censor_nsfw=True,
                warning="--nsfw ignored: this channel does not allow NSFW images",
            )
        return NsfwDecision(nsfw=False, censor_nsfw=True)


SFW = ChannelPolicy(nsfw_allowed=False)
NSFW_ALLOWED = ChannelPolicy(nsfw_allowed=True)
