"""The fifth sync type's registration: name this module in SYNC_TYPE_MODULES."""

from core.syncers.types import register
from tests.ledger import SPEC

register(SPEC)
