"""The one declarative table of bot commands and their options.

Every command (``dream``, ``styles``, ``login`` ...) and every option (name, kind, range, default,
help) is declared here once. The text grammar's flags, structured input (Discord options), the
``/help`` text and the payload builder's defaults are all derived from this table, so a new
option is one line here and cannot drift between platforms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from core.horde.wire import KNOWN_SAMPLERS, MAX_N, MAX_SIDE, MAX_STEPS, MIN_SIDE
from core.unset import UNSET, Unset

DefaultValue = int | float | str | bool


class Kind(StrEnum):
    """How an option's value is written and what it becomes."""

    TEXT = "text"  # several words, up to the next flag (a prompt, a negative)
    WORD = "word"  # one word (a seed, a user name, an id)
    INT = "int"
    FLOAT = "float"
    FLAG = "flag"  # on when present; ``--no-NAME`` turns it off
    CHOICE = "choice"  # one word from ``choices``
    SIZE = "size"  # WxH
    RATIO = "ratio"  # W:H
    LORA = "lora"  # ID_OR_NAME[:strength], v:VERSIONID[:strength]
    TI = "ti"  # ID[:strength], neg:ID[:strength]
    STYLE = "style"  # a style or category name, matched longest-first (spaces allowed)
    MODEL = "model"  # a model name, matched longest-first (spaces allowed)
    COMMAND = "command"  # a command name or alias


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a command.

    ``name`` is the structured key (a Discord option name) and, with ``_`` written as ``-``, the
    long text flag; ``aliases`` are further text spellings (``-s``, ``--no``). ``field`` is the
    ``RequestSpec`` attribute a dream option fills (defaults to ``name``). ``default`` is what
    the payload builder uses when nobody else decides (``from_style``: the style and the model
    reference come first); ``UNSET`` means "none". ``positional`` options take the words that
    are not flags.
    """

    name: str
    kind: Kind
    help: str
    aliases: tuple[str, ...] = ()
    field: str = ""
    minimum: float | None = None
    maximum: float | None = None
    default: DefaultValue | Unset = UNSET
    choices: tuple[str, ...] = ()
    repeatable: bool = False
    positional: bool = False
    required: bool = False
    metavar: str = ""
    from_style: bool = False  # the style or the model reference may decide before the default

    @property
    def target(self) -> str:
        """The ``RequestSpec`` field (or argument key) this option fills."""
        return self.field or self.name

    @property
    def flags(self) -> tuple[str, ...]:
        """Every text spelling of the option, the main one first (none for positionals)."""
        if self.positional:
            return ()
        main = "--" + self.name.replace("_", "-")
        return (main, *self.aliases)

    @property
    def range_text(self) -> str:
        """The allowed range in words, for help and errors ("1 to 500"), or ""."""
        if self.minimum is None or self.maximum is None:
            return ""
        return f"{_number(self.minimum)} to {_number(self.maximum)}"


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its name, what it does and its options."""

    name: str
    help: str
    options: tuple[Option, ...] = ()
    aliases: tuple[str, ...] = ()

    def option(self, name: str) -> Option:
        """The option called ``name`` (its structured key); ``KeyError`` when there is none."""
        for option in self.options:
            if option.name == name:
                return option
        raise KeyError(f"{self.name} has no option {name!r}")

    def positionals(self) -> tuple[Option, ...]:
        """The options filled by words that are not flags, in order."""
        return tuple(o for o in self.options if o.positional)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# Strengths of LoRAs and TIs: the horde accepts -5..5 for both.
STRENGTH_RANGE = (-5.0, 5.0)
MAX_CLIP_SKIP = 12
MAX_RATIO = 8  # the longest side of --ar at most 8 times the shortest

DREAM = Command(
    name="dream",
    help="draw an image: a prompt, then any options",
    aliases=("imagine", "draw", "generate"),
    options=(
        Option(
            "prompt",
            Kind.TEXT,
            "what to draw; text after ### is what to avoid; embedding:ID uses a textual inversion",
            positional=True,
            required=True,
        ),
        Option("style", Kind.STYLE, "a style or category name", aliases=("-s",), metavar="NAME"),
        Option(
            "negative",
            Kind.TEXT,
            "what to avoid (like ### in the prompt)",
            aliases=("--no",),
            metavar="TEXT",
        ),
        Option(
            "ar",
            Kind.RATIO,
            "aspect ratio, at the model's usual pixel count",
            field="aspect",
            metavar="W:H",
        ),
        Option(
            "size",
            Kind.SIZE,
            "width x height in pixels, multiples of 64",
            minimum=MIN_SIDE,
            maximum=MAX_SIDE,
            metavar="WxH",
        ),
        Option(
            "steps",
            Kind.INT,
            "sampling steps",
            minimum=1,
            maximum=MAX_STEPS,
            default=30,
            metavar="N",
            from_style=True,
        ),
        Option(
            "cfg",
            Kind.FLOAT,
            "how closely to follow the prompt (CFG scale, 2 decimals)",
            field="cfg_scale",
            minimum=0,
            maximum=100,
            default=7.5,
            metavar="X",
            from_style=True,
        ),
        Option("seed", Kind.WORD, "seed, for repeatable images", metavar="SEED"),
        Option(
            "n",
            Kind.INT,
            "how many images",
            aliases=("--amount",),
            minimum=1,
            maximum=MAX_N,
            default=1,
            metavar="N",
        ),
        Option("model", Kind.MODEL, "the horde model to use", aliases=("-m",), metavar="NAME"),
        Option(
            "sampler",
            Kind.CHOICE,
            "sampler",
            choices=KNOWN_SAMPLERS,
            default="k_euler_a",
            metavar="NAME",
            from_style=True,
        ),
        Option(
            "lora",
            Kind.LORA,
            "a LoRA by CivitAI id or name, v:ID for a version; repeatable",
            field="loras",
            repeatable=True,
            minimum=STRENGTH_RANGE[0],
            maximum=STRENGTH_RANGE[1],
            metavar="ID[:STRENGTH]",
        ),
        Option(
            "ti",
            Kind.TI,
            "a textual inversion by CivitAI id, neg:ID for the negative; repeatable",
            field="tis",
            repeatable=True,
            minimum=STRENGTH_RANGE[0],
            maximum=STRENGTH_RANGE[1],
            metavar="ID[:STRENGTH]",
        ),
        Option("lcm", Kind.FLAG, "fast LCM sampling: 4-8 steps, CFG 1-2 (SD 1.5 and SDXL)"),
        Option(
            "karras",
            Kind.FLAG,
            "Karras noise schedule (--no-karras: off)",
            default=True,
            from_style=True,
        ),
        Option(
            "clip_skip",
            Kind.INT,
            "CLIP layers to skip",
            minimum=1,
            maximum=MAX_CLIP_SKIP,
            default=1,
            metavar="N",
            from_style=True,
        ),
        Option(
            "hires",
            Kind.FLAG,
            "high-resolution fix",
            field="hires_fix",
            aliases=("--hires-fix",),
            default=False,
        ),
        Option("tiling", Kind.FLAG, "seamless tiles", default=False),
        Option(
            "image",
            Kind.WORD,
            "start from this image (img2img): its http(s) address",
            field="source_image",
            metavar="URL",
        ),
        Option(
            "denoise",
            Kind.FLOAT,
            "how far to move away from --image (0.01 keeps it, 1 ignores it)",
            field="denoising_strength",
            minimum=0.01,
            maximum=1.0,
            metavar="X",
        ),
        Option("nsfw", Kind.FLAG, "allow NSFW results (only where the channel allows it)"),
        Option("challenge", Kind.FLAG, "enter the prompt challenge running here"),
    ),
)

CHALLENGE = Command(
    name="challenge",
    help="prompt challenges: list, results, leaderboard; admins: create, edit, cancel",
    aliases=("challenges",),
    options=(
        Option(
            "action",
            Kind.CHOICE,
            "what to do (default: list)",
            positional=True,
            choices=("list", "show", "results", "leaderboard", "create", "edit", "cancel"),
        ),
        Option("id", Kind.WORD, "which challenge (its id or first 8 characters)", positional=True),
        Option("theme", Kind.TEXT, "the theme", metavar="TEXT"),
        Option("words", Kind.TEXT, "words every entry's prompt must contain", metavar="WORDS"),
        Option("style", Kind.TEXT, "a style or category every entry must use", metavar="NAME"),
        Option("model", Kind.TEXT, "a model every entry must use", metavar="NAME"),
        Option("prizes", Kind.TEXT, "kudos for 1st, 2nd, 3rd ... place", metavar="N N N"),
        Option(
            "starts", Kind.WORD, "when it opens: now, +2h, +1d or 2025-06-01T18:00", metavar="WHEN"
        ),
        Option("entry_hours", Kind.INT, "hours to enter", minimum=1, maximum=24 * 60, metavar="H"),
        Option("voting_hours", Kind.INT, "hours to vote", minimum=1, maximum=24 * 60, metavar="H"),
        Option("venues", Kind.TEXT, "where it runs: platform:channel ...", metavar="P:C"),
        Option("sponsor", Kind.WORD, "who pays: bot, or platform:user_id", metavar="WHO"),
        Option("per_user", Kind.INT, "entries per person", minimum=1, maximum=100, metavar="N"),
    ),
)

COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        command.name: command
        for command in (
            DREAM,
            Command(
                "styles",
                "list the styles and categories, or those matching a word",
                options=(Option("query", Kind.TEXT, "a word to look for", positional=True),),
            ),
            Command(
                "style",
                "show one style or category",
                options=(
                    Option(
                        "name",
                        Kind.STYLE,
                        "style or category name",
                        positional=True,
                        required=True,
                    ),
                ),
            ),
            Command(
                "models",
                "list the models, or those matching a word",
                options=(Option("query", Kind.TEXT, "a word to look for", positional=True),),
            ),
            Command("kudos", "show your kudos on the horde"),
            Command(
                "login",
                "save your AI Horde API key for your requests",
                options=(
                    Option(
                        "api_key",
                        Kind.WORD,
                        "your AI Horde API key",
                        positional=True,
                        required=True,
                    ),
                ),
            ),
            Command("logout", "forget your saved API key"),
            Command(
                "transfer",
                "send kudos to a horde user",
                aliases=("transferkudos",),
                options=(
                    Option(
                        "user",
                        Kind.WORD,
                        "horde user name, alias#id",
                        positional=True,
                        required=True,
                    ),
                    Option(
                        "amount",
                        Kind.INT,
                        "kudos to send",
                        positional=True,
                        required=True,
                        minimum=1,
                        maximum=50_000_000,
                    ),
                ),
            ),
            Command(
                "cancel",
                "cancel your running request",
                options=(
                    Option("id", Kind.WORD, "which request (default: your last)", positional=True),
                ),
            ),
            Command(
                "reroll",
                "draw the same request again with a new seed",
                options=(
                    Option("id", Kind.WORD, "which request (default: your last)", positional=True),
                ),
            ),
            CHALLENGE,
            Command(
                "help",
                "show the commands, or one command's options",
                options=(Option("command", Kind.COMMAND, "a command name", positional=True),),
            ),
            Command(
                "worker",
                "show a horde worker, or the community's workers",
                options=(Option("name", Kind.TEXT, "worker id or name", positional=True),),
            ),
        )
    }
)

_BY_ALIAS: Mapping[str, str] = MappingProxyType(
    {
        alias: command.name
        for command in COMMANDS.values()
        for alias in (command.name, *command.aliases)
    }
)


def find_command(name: str) -> Command | None:
    """The command called ``name`` or one of its aliases (any case), or ``None``."""
    key = _BY_ALIAS.get(name.strip().casefold())
    return COMMANDS[key] if key else None


def command_names() -> list[str]:
    """Every command name and alias: for matching and "did you mean"."""
    return sorted(_BY_ALIAS)


def _default_text(option: Option) -> str:
    if isinstance(option.default, bool):
        return "on" if option.default else "off"
    if option.default is UNSET:
        return ""
    return str(option.default)


def _option_line(option: Option) -> str:
    if option.positional:
        spelled = f"<{option.name}>" if option.required else f"[{option.name}]"
    else:
        value = "" if option.kind is Kind.FLAG else f" {option.metavar or option.name.upper()}"
        spelled = "/".join(option.flags) + value
    notes: list[str] = []
    if option.range_text and option.kind in (Kind.INT, Kind.FLOAT, Kind.SIZE):
        notes.append(option.range_text)
    if option.kind is Kind.CHOICE:
        notes.append("one of " + ", ".join(option.choices))
    default = _default_text(option)
    if default and (option.kind is not Kind.FLAG or option.default is True):
        notes.append(
            f"default: style or model, else {default}"
            if option.from_style
            else f"default: {default}"
        )
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return f"  {spelled}  {option.help}{suffix}"


def help_text(command: str | None = None) -> str:
    """The ``/help`` text: every command in one line each, or one command with its options.

    Raises ``KeyError`` for an unknown command name; the grammar reports that to the user.
    """
    if command is None:
        width = max(len(name) for name in COMMANDS)
        lines = ["Commands:"]
        lines += [f"  /{c.name:<{width}}  {c.help}" for c in COMMANDS.values()]
        lines.append("Write /help COMMAND for its options.")
        return "\n".join(lines)
    found = find_command(command)
    if found is None:
        raise KeyError(command)
    usage = " ".join(f"<{o.name}>" if o.required else f"[{o.name}]" for o in found.positionals())
    lines = [f"/{found.name} {usage}".rstrip() + f": {found.help}"]
    if found.aliases:
        lines.append("Also: " + ", ".join(f"/{a}" for a in found.aliases))
    if found is DREAM:
        lines.append(
            "Text form: draw me <prompt> style: <name> ### <negative>, or flags; "
            "-- may be written as an em dash."
        )
    if found.options:
        lines.append("Options:")
        lines += [_option_line(o) for o in found.options]
    return "\n".join(lines)
