"""The codes the CLI adds to the ledger's, the trade engine's and the store's.

A refused command prints `error <code>: <message>` on stderr and exits 2 (bad input, or
nothing to act on); a transfer the ledger refuses prints its result code and exits 1.
"""

from __future__ import annotations

from enum import Enum


class CliCode(str, Enum):
    database_not_found = "database_not_found"  # no SQLite file where the URL points: run `danbao init`
    schema_out_of_date = "schema_out_of_date"  # the database's schema is older (or newer) than this danbao's
    account_not_found = "account_not_found"  # `account show/history/holds` of an id the ledger does not have
    too_many_keys = "too_many_keys"  # `admin-key`: the operator holds the most live keys it may
    database_not_empty = "database_not_empty"  # `demo`: its database must be its own
    postgres_missing = "postgres_missing"  # `bench`: no PostgreSQL binaries for a throwaway cluster
