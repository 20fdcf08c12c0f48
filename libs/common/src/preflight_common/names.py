"""The one grammar of organisation and sector names, as the services import it.

It is defined once in `preflight.sdk.naming` (1-63 lowercase letters, digits or ``-``, a DNS
label), which operators' clients share with the services: the alert topic names derived from
it are the same on both sides.
"""

from __future__ import annotations

from preflight.sdk.naming import NAME_MAX_LENGTH as NAME_MAX_LENGTH
from preflight.sdk.naming import NAME_PATTERN as NAME_PATTERN
from preflight.sdk.naming import NAME_RULE as NAME_RULE
from preflight.sdk.naming import check_name as check_name
from preflight.sdk.naming import is_valid_name as is_valid_name
