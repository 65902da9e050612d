"""``CommandInbox``: every command of the table on one core, for every adapter alike.

Image commands (``dream``, ``reroll``, ``variations``) go to the ``GenerationService``; the rest
(help, styles, models, login, kudos, transfer, cancel, worker …) are answered here at once with an
``Ack`` of kind ``ANSWERED``. Each answered event is claimed in the store *before* anything is
done, so a redelivered event (a platform retry, a restart catching up) gets ``DUPLICATE`` and no
second answer or side effect: a replayed ``/logout`` cannot undo a later ``/login``.

A user's horde API key is taken from ``/login`` text, checked at the horde, stored sealed and
never written to a log line or an answer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from pydantic import ValidationError

from core import answers
from core.catalog import Catalog
from core.challenges import admin as challenge_admin
from core.challenges.runner import ChallengeRunner
from core.commands import DREAM, Command, find_command, help_text
from core.errors import UserError
from core.grammar import parse_command
from core.horde.client import HordeClient
from core.horde.errors import HordeError, InvalidAPIKey, Unauthorized, UserNotFound
from core.horde.wire import ANON_API_KEY, GenerationInput, WorkerDetails
from core.messages import Ack, AckKind, Invocation
from core.payload import BuiltRequest
from core.request import ArgValue, CommandRequest
from core.service import StoredGeneration
from core.store import Store
from core.store.ledger import StoreLedger

log = logging.getLogger(__name__)

VARIATIONS = "variations"
# How many images a "variations" follow-up asks for, each a small step from the original seed.
VARIATION_IMAGES = 4
MODELS_SHOWN = 20


class ImageService(Protocol):
    """What the inbox needs of ``core.service.GenerationService``."""

    async def submit(self, invocation: Invocation) -> Ack: ...

    async def submit_planned(
        self, invocation: Invocation, planned: list[BuiltRequest], *, user_key: str
    ) -> Ack: ...

    def in_flight_for(self, user_key: str) -> list[str]: ...

    async def cancel(self, generation_id: str) -> str: ...


_Handler = Callable[[Invocation, Mapping[str, ArgValue]], Awaitable[str]]


class CommandInbox:
    """Implements ``core.contract.Inbox``: routes each invocation by its command name."""

    def __init__(
        self,
        *,
        service: ImageService,
        catalog: Catalog,
        store: Store,
        horde: HordeClient,
        community_workers: tuple[str, ...] = (),
        models_shown: int = MODELS_SHOWN,
    ) -> None:
        self._service = service
        self._catalog = catalog
        self._store = store
        self._ledger = StoreLedger(store)
        self._horde = horde
        self._community = tuple(w.casefold() for w in community_workers)
        self._models_shown = models_shown
        self._challenges: ChallengeRunner | None = None
        self._handlers: dict[str, _Handler] = {
            "help": self._help,
            "styles": self._styles,
            "style": self._style,
            "models": self._models,
            "kudos": self._kudos,
            "logout": self._logout,
            "transfer": self._transfer,
            "cancel": self._cancel,
            "worker": self._worker,
            "challenge": self._challenge,
        }

    def use_challenges(self, runner: ChallengeRunner | None) -> None:
        """Route ``/challenge``, ``--challenge`` entries and prize claims at ``/login`` to it."""
        self._challenges = runner

    async def submit(self, invocation: Invocation) -> Ack:
        """Hand one command over: accepted (an image), answered, refused, or a duplicate."""
        name = invocation.command.strip().casefold()
        command = find_command(name)
        if command is DREAM:
            return await self._dream(invocation)
        if name == VARIATIONS or (command is not None and command.name == "reroll"):
            return await self._reroll(invocation, command)
        if not await self._store.claim_event(invocation.platform, invocation.event_id):
            return Ack(AckKind.DUPLICATE)
        try:
            text = await self._answer(invocation, name, command)
        except UserError as exc:
            return Ack(AckKind.REJECTED, str(exc))
        except HordeError as exc:
            log.info("/%s refused by the horde: %s", name, exc)
            return Ack(AckKind.REJECTED, exc.user_message)
        return Ack(AckKind.ANSWERED, text)

    async def _answer(self, invocation: Invocation, name: str, command: Command | None) -> str:
        if command is None:
            raise answers.unknown_command(name)
        if command.name == "login":
            # Not through the grammar: its errors quote the words they reject, and this word is
            # a secret.
            return await self._login(invocation)
        handler = self._handlers.get(command.name)
        if handler is None:
            raise RuntimeError(f"/{command.name} is declared but the inbox has no handler")
        return await handler(invocation, self._parse(command, invocation).args)

    def _parse(self, command: Command, invocation: Invocation) -> CommandRequest:
        if invocation.options is not None:
            return self._catalog.parse_options(command.name, invocation.options)
        return parse_command(command, invocation.text or "", self._catalog.vocabulary)

    async def _refuse(self, invocation: Invocation, message: str) -> Ack:
        if not await self._store.claim_event(invocation.platform, invocation.event_id):
            return Ack(AckKind.DUPLICATE)
        return Ack(AckKind.REJECTED, message)

    # ---- dreams and challenge entries -----------------------------------------------------

    async def _dream(self, invocation: Invocation) -> Ack:
        """A dream; one that enters a challenge is checked against its rules first."""
        try:
            spec = self._parse(DREAM, invocation).spec
        except UserError:
            spec = None  # the service reports it, and claims the event
        asked = spec is not None and spec.challenge is True
        if spec is None or (self._challenges is None and not asked):
            return await self._service.submit(invocation)
        if self._challenges is None:
            return await self._refuse(invocation, "no prompt challenges run here")
        try:
            challenge = await self._challenges.entry_for(invocation, spec, asked=asked)
        except UserError as exc:
            return await self._refuse(invocation, str(exc))
        ack = await self._service.submit(invocation)
        if challenge is not None and ack.kind is AckKind.ACCEPTED and ack.generation_ids:
            # One entry per command: a category that drew several styles enters its first.
            await self._challenges.record_entry(
                challenge, invocation, ack.generation_ids[0], spec.prompt
            )
        return ack

    # ---- image follow-ups -----------------------------------------------------------------

    async def _reroll(self, invocation: Invocation, command: Command | None) -> Ack:
        """The user's earlier request again: a new seed, or (variations) steps from its seed.

        ``command`` is ``reroll`` from the table; ``None`` for the ``variations`` button, which
        has no text form of its own but takes the same optional ``id``.
        """
        user_key = _user_key(invocation)
        try:
            wanted: object = None
            if command is not None:
                wanted = self._parse(command, invocation).args.get("id")
            elif invocation.options is not None:
                wanted = invocation.options.get("id")
            elif invocation.text:
                wanted = invocation.text.strip()
            earlier = await self._earlier(invocation, user_key, str(wanted) if wanted else None)
            planned = _again(earlier, invocation, variations=command is None)
        except UserError as exc:
            return await self._refuse(invocation, str(exc))
        return await self._service.submit_planned(invocation, [planned], user_key=user_key)

    async def _earlier(
        self, invocation: Invocation, user_key: str, wanted: str | None
    ) -> StoredGeneration:
        if wanted is None:
            found = await self._ledger.last_generation(invocation.platform, user_key)
            if found is None:
                raise UserError("no earlier request to reroll", hint="draw something first")
            return found
        stored = await self._store.generation(wanted)
        if (
            stored is None
            or stored.platform != invocation.platform
            or stored.platform_user_id != invocation.user.user_id
        ):
            raise UserError("you have no request with that id", hint="leave it out for your last")
        style, category = stored.spec.get("style"), stored.spec.get("category")
        return StoredGeneration(
            id=stored.id,
            platform=stored.platform,
            event_id=stored.event_id,
            user_key=user_key,
            target=invocation.target,
            body=stored.payload,
            state=stored.state.value,
            style=None if style is None else str(style),
            category=None if category is None else str(category),
            result=stored.result,
        )

    # ---- answered at once -----------------------------------------------------------------

    async def _help(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        name = args.get("command")
        return help_text(None if name is None else str(name))

    async def _styles(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        query = args.get("query")
        return answers.styles_listing(self._catalog.library, None if query is None else str(query))

    async def _style(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        return answers.style_details(self._catalog.library, str(args["name"]))

    async def _models(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        query = args.get("query")
        counts = await self._horde.worker_counts()
        return answers.models_listing(
            counts,
            self._catalog.reference,
            None if query is None else str(query),
            self._models_shown,
        )

    async def _login(self, invocation: Invocation) -> str:
        key = _key_from(invocation)
        if key == ANON_API_KEY:
            raise UserError("that is the anonymous key", hint="log in with your own AI Horde key")
        try:
            account = await self._horde.with_key(key).find_user()
        except (InvalidAPIKey, UserNotFound, Unauthorized):
            raise UserError(
                "that key is not valid", hint="copy it from https://aihorde.net/register"
            ) from None
        user = await self._store.identify(
            invocation.platform, invocation.user.user_id, invocation.user.display_name
        )
        await self._store.set_api_key(user.id, key)
        log.info("%s logged in as horde user %s", _user_key(invocation), account.id)
        answer = answers.login_line(account)
        answer += await self._claim_prizes(invocation)
        if not invocation.channel.is_dm:
            answer += "; next time send /login in a direct message, and delete this one"
        return answer

    async def _claim_prizes(self, invocation: Invocation) -> str:
        if self._challenges is None:
            return ""
        try:
            paid = await self._challenges.claim(invocation.platform, invocation.user.user_id)
        except (HordeError, RuntimeError):
            # The login itself worked; the prizes stay unclaimed for the next /login.
            log.exception("challenge prizes of %s could not be paid", _user_key(invocation))
            return "; your challenge prizes could not be paid yet, /login again later"
        return f"; {paid} kudos of challenge prizes paid to you" if paid else ""

    async def _challenge(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        if self._challenges is None:
            raise UserError("no prompt challenges run here")
        return await challenge_admin.answer(self._challenges, invocation, args)

    async def _logout(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        user = await self._store.find_user(invocation.platform, invocation.user.user_id)
        if user is None or not await self._store.clear_api_key(user.id):
            return "you were not logged in"
        return "logged out: your AI Horde key is forgotten"

    async def _kudos(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        client = await self._client_of(invocation, "to see your kudos")
        return answers.kudos_line(await client.find_user())

    async def _transfer(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        client = await self._client_of(invocation, "to send kudos")
        username, amount = str(args["user"]), int(args["amount"])
        # One key per platform event: the client's retries and a redelivery move kudos once.
        idempotency = hashlib.sha256(
            f"{invocation.platform}\n{invocation.event_id}".encode()
        ).hexdigest()[:40]
        moved = await client.transfer_kudos(username, amount, idempotency_key=idempotency)
        return answers.transfer_line(username, moved.transferred)

    async def _cancel(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        running = self._service.in_flight_for(_user_key(invocation))
        wanted = args.get("id")
        if wanted is not None:
            if str(wanted) not in running:
                raise UserError("you have no running request with that id")
            target = str(wanted)
        elif running:
            target = running[-1]
        else:
            raise UserError("you have no running request to cancel")
        await self._service.cancel(target)
        return "cancelled; any images already finished will still be sent"

    async def _worker(self, invocation: Invocation, args: Mapping[str, ArgValue]) -> str:
        listed = []
        for row in await self._horde.workers():
            try:
                listed.append(WorkerDetails.model_validate(row))
            except ValidationError:
                log.debug("skipping a worker record that does not fit: %.200r", row)
        name = args.get("name")
        if name is not None:
            wanted = str(name).casefold()
            found = [w for w in listed if wanted in (w.id.casefold(), w.name.casefold())]
            if not found:
                raise UserError(f"the horde lists no worker called {str(name)[:60]!r}")
            return answers.workers_listing(found, community=False)
        if self._community:
            listed = [
                w for w in listed if {w.id.casefold(), w.name.casefold()} & {*self._community}
            ]
        return answers.workers_listing(listed, community=bool(self._community))

    async def _client_of(self, invocation: Invocation, purpose: str) -> HordeClient:
        key = await self._ledger.user_api_key(invocation.platform, invocation.user.user_id)
        if key is None:
            raise UserError(f"log in with /login KEY {purpose}")
        return self._horde.with_key(key)


def _user_key(invocation: Invocation) -> str:
    return f"{invocation.platform}:{invocation.user.user_id}"


def _key_from(invocation: Invocation) -> str:
    if invocation.options is not None:
        raw = invocation.options.get("api_key")
        words = raw.split() if isinstance(raw, str) else []
    else:
        words = (invocation.text or "").split()
    if len(words) != 1:
        raise UserError("/login takes your AI Horde API key and nothing else", hint="/login KEY")
    return words[0]


def _again(earlier: StoredGeneration, invocation: Invocation, *, variations: bool) -> BuiltRequest:
    """The stored body sent again: a fresh seed, or the same seed stepped for variations."""
    body = GenerationInput.model_validate(dict(earlier.body))
    if variations:
        seed = body.params.seed or _first_seed(earlier)
        if not seed:
            raise UserError("that request has no seed yet to vary", hint="wait for its images")
        params = body.params.model_copy(
            update={"seed": seed, "seed_variation": 1, "n": VARIATION_IMAGES}
        )
    else:
        params = body.params.model_copy(update={"seed": None, "seed_variation": None})
    body = body.model_copy(update={"params": params})
    if not invocation.channel.nsfw_allowed:
        # Rerolled in another channel than the original's: this channel's policy applies.
        body = body.model_copy(update={"nsfw": False, "censor_nsfw": True})
    return BuiltRequest(body=body, style=earlier.style, category=earlier.category)


def _first_seed(earlier: StoredGeneration) -> str | None:
    images = (earlier.result or {}).get("images") or []
    seed = images[0].get("seed") if images and isinstance(images[0], Mapping) else None
    return str(seed) if seed not in (None, "") else None
