"""What the composition root hands a platform adapter when it builds one.

Each platform package has ``factory.build(config, deps)``, returning its adapter or ``None`` when
its config section is absent or disabled; ``bots.platforms`` calls them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog import Catalog
from core.store import Store


@dataclass(frozen=True, slots=True)
class AdapterDeps:
    """The shared parts an adapter may use: the store (cursors, identities) and the catalog
    (style and model names for autocomplete)."""

    store: Store
    catalog: Catalog
