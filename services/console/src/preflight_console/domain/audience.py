"""Which organisations a sharing choice reaches, before it is saved.

The decision is the clearinghouse's own sharing policy (`preflight_clearinghouse.domain.sharing.
reaches`), applied to every organisation in the participants registry: the preview and the
clearinghouse cannot disagree about the rule, only about who is registered.
"""

from __future__ import annotations

from collections.abc import Iterable

from preflight_clearinghouse.domain.sharing import Audience, Tlp, reaches
from preflight_common import bus

TLP_CHOICES: tuple[Tlp, ...] = tuple(Tlp)


def preview(
    tlp: Tlp, organisations: Iterable[str], sectors: Iterable[str], participants: bus.Participants
) -> list[str]:
    """The registered organisations that will see a published finding with this label and audience."""
    audience = Audience(frozenset(organisations), frozenset(s.strip().lower() for s in sectors))
    return sorted(
        o.name for o in participants.organisations if reaches(tlp, audience, o.name, frozenset(o.sectors))
    )
