"""Typed exceptions for everything that can go wrong talking to an AI Horde.

Each horde error carries the HTTP status, the horde's return code (``rc``) and message for logs,
and a one-line ``user_message`` written for the person who asked (what happened, what to change).
Callers catch the specific classes they can act on (``KudosUpfront``, ``RequestNotFound`` …) and
show ``user_message`` for the rest. An ``rc`` this module does not know still becomes a
``HordeError`` of the right family (bad request, forbidden, not found …), never a crash.

core.horde imports nothing else from core, so these are not ``core.errors.UserError``; the service
layer turns ``user_message`` into one.
"""

from __future__ import annotations

from typing import ClassVar


class HordeError(Exception):
    """An AI Horde call failed; ``user_message`` is safe to show, ``str()`` is for the logs."""

    rc_code: ClassVar[str | None] = None
    default_user_message: ClassVar[str] = "the AI Horde refused the request; try again later"
    #: Whether calling again unchanged can succeed (rate limits, outages), as opposed to a refusal.
    transient: ClassVar[bool] = False

    _by_rc: ClassVar[dict[str, type[HordeError]]] = {}

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        rc: str | None = None,
        user_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.detail = " ".join(detail.split())
        self.status = status
        self.rc = rc if rc is not None else self.rc_code
        self.user_message = user_message or self.default_user_message
        self.retry_after = retry_after
        super().__init__(self.__str__())

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.rc_code is not None and "rc_code" in cls.__dict__:
            HordeError._by_rc[cls.rc_code] = cls

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.rc) if part is not None)
        return f"horde {head}: {self.detail}" if head else f"horde: {self.detail}"

    @classmethod
    def for_rc(cls, rc: str) -> type[HordeError] | None:
        """The class registered for a return code; a few codes carry a trailing dot upstream."""
        return cls._by_rc.get(rc.rstrip("."))


# ---- families, used for codes we do not know -------------------------------------------------


class BadRequest(HordeError):
    """400: the horde did not accept what was sent."""

    default_user_message = "the AI Horde refused these settings; change them and try again"


class ValidationFailed(BadRequest):
    """400 schema error (``errors`` per field, no ``rc``): we built a body the horde rejects."""

    default_user_message = "the AI Horde rejected the request's settings; change them and try again"

    def __init__(self, detail: str, *, errors: dict[str, str], status: int | None = 400) -> None:
        self.errors = dict(errors)
        fields = ", ".join(f"{key}: {value}" for key, value in sorted(self.errors.items()))
        super().__init__(f"{detail} ({fields})" if fields else detail, status=status)


class Unauthorized(HordeError):
    """401 without a known code."""

    default_user_message = "the AI Horde did not accept the API key; check it or log in again"


class Forbidden(HordeError):
    """403 without a known code."""

    default_user_message = "the AI Horde does not allow this for your account"


class NotFound(HordeError):
    """404 without a known code (``<Thing>NotFound`` codes are built dynamically upstream)."""

    default_user_message = "the AI Horde does not know that; check the name or id"


class RateLimited(HordeError):
    """429 from the horde's rate limiter (no ``rc``); ``retry_after`` says when, if known."""

    default_user_message = "the AI Horde is busy with our requests; try again in a minute"
    transient = True


class ServerError(HordeError):
    """5xx: the horde failed; usually passes."""

    default_user_message = "the AI Horde is having trouble right now; try again in a few minutes"
    transient = True


class HordeUnavailable(HordeError):
    """No answer at all (timeout, refused connection) after the retries."""

    default_user_message = "the AI Horde cannot be reached right now; try again in a few minutes"
    transient = True


class SubmissionUncertain(HordeError):
    """A request that must not be sent twice got no clear answer; the horde may have queued it.

    Raised instead of retrying ``POST /generate/async`` after the body may have reached the horde
    (read timeout, dropped connection, 500/502/504): a blind retry could charge the user twice.
    """

    default_user_message = (
        "the AI Horde did not confirm the request; it may still run, so wait a minute before "
        "asking again"
    )


class InvalidResponse(HordeError):
    """A success answer whose body is not what the protocol says."""

    default_user_message = "the AI Horde sent an answer we could not read; try again later"


class ImageTooLarge(HordeError):
    """A result image is above the size cap; it was not downloaded in full."""

    default_user_message = "the image is too large to fetch"


class ImageUnavailable(HordeError):
    """A result image could not be fetched or decoded (expired link, ``N/A``, bad base64)."""

    default_user_message = "the image is no longer available at the AI Horde"


class UploadFailed(HordeError):
    """A worker's PUT to its presigned upload URL failed."""

    default_user_message = "the image upload failed"


# ---- return codes a user can meet and act on --------------------------------------------------


class MissingPrompt(BadRequest):
    """The prompt was empty."""

    rc_code = "MissingPrompt"
    default_user_message = "write a prompt describing the image"


class CorruptPrompt(BadRequest):
    """The horde's prompt filter refused the prompt (and may time out our IP)."""

    rc_code = "CorruptPrompt"
    default_user_message = "the AI Horde refused this prompt; change the prompt"


class InvalidPromptSize(BadRequest):
    """The prompt is too long."""

    rc_code = "InvalidPromptSize"
    default_user_message = "the prompt is too long; shorten it"


class MaintenanceMode(BadRequest):
    """The horde accepts no new requests for now."""

    rc_code = "MaintenanceMode"
    default_user_message = "the AI Horde is in maintenance; try again later"
    transient = True


class NoValidWorkers(BadRequest):
    """No worker could ever serve the request as asked."""

    rc_code = "NoValidWorkers"
    default_user_message = (
        "no AI Horde worker can serve this request; pick another model or fewer options"
    )


class UnsupportedModel(BadRequest):
    """A model the horde does not offer."""

    rc_code = "UnsupportedModel"
    default_user_message = "the AI Horde does not offer that model; pick another one"


class UnexpectedModelName(BadRequest):
    """A post-processor was given as a model."""

    rc_code = "UnexpectedModelName"
    default_user_message = "that name is a post-processor, not a model; pick a model"


class TooManyLoras(BadRequest):
    """Over the LoRA limit."""

    rc_code = "TooManyLoras"
    default_user_message = "too many LoRAs; use at most 5"


class TooManyTIs(BadRequest):
    """Over the textual-inversion limit."""

    rc_code = "TooManyTIs"
    default_user_message = "too many textual inversions; use at most 20"


class TooManyUpscalers(BadRequest):
    """More than one upscaler."""

    rc_code = "TooManyUpscalers"
    default_user_message = "use at most one upscaler"


class BadCFGDecimals(BadRequest):
    """cfg_scale with more than two decimals."""

    rc_code = "BadCFGDecimals"
    default_user_message = "cfg scale takes at most 2 decimals"


class BadCFGNumber(BadRequest):
    """cfg_scale out of range."""

    rc_code = "BadCFGNumber"
    default_user_message = "cfg scale must be between 0 and 100"


class DuplicateGen(BadRequest):
    """A worker submitted a job that was already submitted."""

    rc_code = "DuplicateGen"
    default_user_message = "this job was already submitted"


class AbortedGen(BadRequest):
    """A worker submitted a job that had already timed out."""

    rc_code = "AbortedGen"
    default_user_message = "this job took too long and was given to another worker"


class KudosTransferError(BadRequest):
    """A kudos transfer the horde refused (a family; see the subclasses)."""

    default_user_message = "the AI Horde refused the kudos transfer"


class KudosTransferNotEnough(KudosTransferError):
    """The sender holds fewer kudos than the amount."""

    rc_code = "KudosTransferNotEnough"
    default_user_message = "you do not have that many kudos; send fewer"


class KudosTransferToSelf(KudosTransferError):
    """Sender and receiver are the same account."""

    rc_code = "KudosTransferToSelf"
    default_user_message = "you cannot send kudos to yourself"


class KudosTransferToAnon(KudosTransferError):
    """The receiver is the anonymous account."""

    rc_code = "KudosTransferToAnon"
    default_user_message = "you cannot send kudos to the anonymous account"


class KudosTransferFromAnon(KudosTransferError):
    """The sender is anonymous."""

    rc_code = "KudosTransferFromAnon"
    default_user_message = "log in with your AI Horde API key to send kudos"


class NegativeKudosTransfer(KudosTransferError):
    """A negative amount."""

    rc_code = "NegativeKudosTransfer"
    default_user_message = "send a positive number of kudos"


class InvalidKudosTransferAmount(KudosTransferError):
    """Zero kudos."""

    rc_code = "InvalidKudosTransferAmount"
    default_user_message = "send a positive number of kudos"


class InvalidTargetUsername(KudosTransferError):
    """The receiver is not ``alias#id`` nor a shared key."""

    rc_code = "InvalidTargetUsername"
    default_user_message = "name the receiver as alias#id (for example db0#1)"


class TooFastKudosTransfers(KudosTransferError):
    """Sending kudos straight back within a minute."""

    rc_code = "TooFastKudosTransfers"
    default_user_message = "wait a minute before sending kudos back"


class IdempotencyKeyConflict(KudosTransferError):
    """An idempotency key reused for a different transfer."""

    rc_code = "IdempotencyKeyConflict"
    default_user_message = "this transfer clashes with an earlier one; try again"


class InvalidAPIKey(Unauthorized):
    """Missing or unknown API key."""

    rc_code = "InvalidAPIKey"
    default_user_message = "the AI Horde API key is not valid; check it or log in again"


class KudosUpfront(Forbidden):
    """The request is big enough that the kudos must be held before it starts."""

    rc_code = "KudosUpfront"
    default_user_message = (
        "this request needs kudos up front; lower the steps or size, or log in with an "
        "AI Horde key that holds kudos"
    )


class TimeoutIP(Forbidden):
    """The horde put our IP on a timeout (after prompt-filter hits)."""

    rc_code = "TimeoutIP"
    default_user_message = "the AI Horde has paused this bot for a few minutes; try again later"


class UntrustedUnsafeIP(Forbidden):
    """Requests from this IP are refused while the horde is in raid mode."""

    rc_code = "UntrustedUnsafeIP"
    default_user_message = "the AI Horde refuses requests from this network right now"


class BannedClientAgent(Forbidden):
    """The horde bans our Client-Agent."""

    rc_code = "BannedClientAgent"
    default_user_message = "the AI Horde refuses this bot's version; the operator must update it"


class DeletedUser(Forbidden):
    """The account was deleted."""

    rc_code = "DeletedUser"
    default_user_message = "this AI Horde account was deleted; log in with another key"


class RequiresTrust(Forbidden):
    """The option needs a trusted account."""

    rc_code = "RequiresTrust"
    default_user_message = "this option needs a trusted AI Horde account"


class SharedKeyEmpty(Forbidden):
    """The shared key has no kudos left."""

    rc_code = "SharedKeyEmpty"
    default_user_message = "this shared key has no kudos left"


class SharedKeyExpired(Forbidden):
    """The shared key expired."""

    rc_code = "SharedKeyExpired"
    default_user_message = "this shared key has expired"


class SharedKeyInsufficientKudos(Forbidden):
    """The shared key cannot pay for this request."""

    rc_code = "SharedKeyInsufficientKudos"
    default_user_message = "this shared key cannot pay for this request; ask for less"


class AnonForbiddenWorker(Forbidden):
    """The anonymous key cannot run a worker."""

    rc_code = "AnonForbiddenWorker"
    default_user_message = "a worker needs a registered AI Horde API key"


class WrongCredentials(Forbidden):
    """The worker name belongs to someone else."""

    rc_code = "WrongCredentials"
    default_user_message = "that worker name belongs to another account; pick another name"


class WorkerMaintenance(Forbidden):
    """The worker is in maintenance mode."""

    rc_code = "WorkerMaintenance"
    default_user_message = "the worker is in maintenance; take it out on the AI Horde first"


class RequestNotFound(NotFound):
    """The request id is unknown: it expired (20 minutes) or never existed."""

    rc_code = "RequestNotFound"
    default_user_message = (
        "the AI Horde no longer knows this request (requests expire after 20 minutes)"
    )


class UserNotFound(NotFound):
    """No account for that key or name."""

    rc_code = "UserNotFound"
    default_user_message = "the AI Horde knows no user with that API key"


class InvalidJobID(NotFound):
    """A worker submitted an unknown job id."""

    rc_code = "InvalidJobID"
    default_user_message = "the AI Horde does not know this job"


class WorkerNotFound(NotFound):
    """A worker id in the request is unknown."""

    rc_code = "WorkerNotFound"
    default_user_message = "one of the chosen workers does not exist"


class StyleNotFound(NotFound):
    """A horde style that does not exist."""

    rc_code = "StyleNotFound"
    default_user_message = "the AI Horde has no style by that name"


class TooManyPrompts(HordeError):
    """429 with ``rc``: the user already has as many images waiting as their concurrency allows."""

    rc_code = "TooManyPrompts"
    default_user_message = (
        "you have too many images waiting at the AI Horde; wait for some to finish"
    )


_FAMILY_BY_STATUS: dict[int, type[HordeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


def error_class_for(status: int, rc: str | None) -> type[HordeError]:
    """The most specific exception class for an HTTP status and an optional return code."""
    if rc:
        known = HordeError.for_rc(rc)
        if known is not None:
            return known
    if status >= 500:
        return ServerError
    return _FAMILY_BY_STATUS.get(status, HordeError)
