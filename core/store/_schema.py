"""The schema, as one list of versioned migrations that every backend applies in order.

A migration is written once, in SQL both SQLite and PostgreSQL accept, with a few named
holes where the two spell a thing differently (``{real}``: a 64-bit float; ``{blob}``; the
audit log's sequence column; its append-only guard). :func:`for_sqlite` and
:func:`for_postgresql` fill the holes. Only where the databases really differ (SQLite cannot
drop a column's ``UNIQUE`` in place and rebuilds the table; PostgreSQL drops the constraint)
does a migration carry two texts.

Column names ``by`` and ``user`` are keywords in PostgreSQL, so every statement quotes them
(``"by"``, ``"user"``), which SQLite reads the same way.

Schema numbering is the list's: version N means the first N migrations were applied.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration", "for_postgresql", "for_sqlite"]


@dataclass(frozen=True)
class Migration:
    """One schema step: one text for both dialects, or one for each."""

    both: str = ""
    sqlite: str = ""
    postgresql: str = ""


_SQLITE = {
    "real": "REAL",
    "blob": "BLOB",
    "audit_seq": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "without_rowid": " WITHOUT ROWID",
    "audit_guard": """
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    "assignees_follow_status": """
    CREATE TRIGGER event_assignees_status AFTER UPDATE OF status ON events
        WHEN OLD.status IS NOT NEW.status AND NEW.assigned <> 0
        BEGIN UPDATE event_assignees SET status = NEW.status WHERE event_id = NEW.id; END;
    """,
}
_POSTGRESQL = {
    "real": "DOUBLE PRECISION",  # PostgreSQL's REAL is 32 bits: timestamps would lose digits
    "blob": "BYTEA",
    "audit_seq": "BIGINT PRIMARY KEY",  # the writer numbers entries itself, under its lock
    "without_rowid": "",
    "audit_guard": """
    CREATE FUNCTION signoff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION signoff_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION signoff_audit_append_only();
    """,
    "assignees_follow_status": """
    CREATE FUNCTION signoff_assignees_status() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN
            UPDATE event_assignees SET status = NEW.status WHERE event_id = NEW.id;
            RETURN NULL;
        END $$;
    CREATE TRIGGER event_assignees_status AFTER UPDATE OF status ON events
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.assigned <> 0)
        EXECUTE FUNCTION signoff_assignees_status();
    """,
}

MIGRATIONS: list[Migration] = [
    # 1: the first schema
    Migration(both="""
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        key TEXT UNIQUE,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'cancelled')),
        sort_priority INTEGER NOT NULL,      -- minus the priority rank: ascending = urgent first
        created_at {real} NOT NULL,
        deadline {real},
        requested_by TEXT NOT NULL,
        assigned INTEGER NOT NULL,           -- 0: anyone may answer
        body TEXT NOT NULL                   -- the rest of the event, as JSON
    );
    CREATE INDEX events_order ON events (status, sort_priority, created_at, id);
    CREATE INDEX events_all_order ON events (sort_priority, created_at, id);
    CREATE INDEX events_deadline ON events (deadline) WHERE status = 'pending';
    CREATE INDEX events_requester ON events (requested_by, status);
    CREATE TABLE event_assignees (
        principal TEXT NOT NULL,
        event_id TEXT NOT NULL REFERENCES events (id),
        PRIMARY KEY (principal, event_id)
    ){without_rowid};
    CREATE INDEX event_assignees_event ON event_assignees (event_id);
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events (id),
        "by" TEXT NOT NULL,
        value TEXT NOT NULL,
        comment TEXT,
        channel TEXT NOT NULL,
        at {real} NOT NULL
    );
    CREATE INDEX responses_event ON responses (event_id, at);
    CREATE TABLE decisions (
        event_id TEXT PRIMARY KEY REFERENCES events (id),   -- one decision per event, ever
        value TEXT NOT NULL,
        outcome TEXT NOT NULL,
        "by" TEXT NOT NULL,
        comment TEXT,
        channel TEXT NOT NULL,
        at {real} NOT NULL
    );
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events (id),
        resumer TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at {real},
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL
    );
    CREATE INDEX deliveries_event ON deliveries (event_id);
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        "user" TEXT NOT NULL,
        groups TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('workflow', 'reviewer', 'admin')),
        created_at {real} NOT NULL
    );
    CREATE TABLE audit (
        seq {audit_seq},
        at {real} NOT NULL,
        event_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        channel TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_event ON audit (event_id, seq);
    {audit_guard}
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value {blob} NOT NULL);
    """),
    # 2: policies: the rule behind a decision, escalation tiers, one response per responder
    Migration(both="""
    ALTER TABLE decisions ADD COLUMN rule TEXT;
    ALTER TABLE events ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN next_escalation {real};
    CREATE INDEX events_escalation ON events (next_escalation) WHERE status = 'pending';
    CREATE UNIQUE INDEX responses_once ON responses (event_id, "by");
    """),
    # 3: count an inbox without visiting every pending event
    Migration(both="""
    CREATE INDEX events_open ON events (status, assigned);
    """),
    # 4: idempotency keys belong to the identity that created the event; a keyed audit chain.
    # SQLite cannot drop a column's UNIQUE in place: the table is rebuilt the documented way
    # (https://www.sqlite.org/lang_altertable.html#otheralter: create, copy, drop, rename,
    # recreate the indexes; migrate() runs it with foreign keys off and checks them before the
    # commit). PostgreSQL drops the constraint. Then _seal_legacy_audit starts the keyed chain.
    Migration(sqlite="""
    CREATE TABLE events_new (
        id TEXT PRIMARY KEY,
        key TEXT,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'cancelled')),
        sort_priority INTEGER NOT NULL,
        created_at REAL NOT NULL,
        deadline REAL,
        requested_by TEXT NOT NULL,
        assigned INTEGER NOT NULL,
        body TEXT NOT NULL,
        escalation_level INTEGER NOT NULL DEFAULT 0,
        next_escalation REAL,
        UNIQUE (requested_by, key)
    );
    INSERT INTO events_new (id, key, name, status, sort_priority, created_at, deadline,
                            requested_by, assigned, body, escalation_level, next_escalation)
        SELECT id, key, name, status, sort_priority, created_at, deadline, requested_by,
               assigned, body, escalation_level, next_escalation FROM events;
    DROP TABLE events;
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_order ON events (status, sort_priority, created_at, id);
    CREATE INDEX events_all_order ON events (sort_priority, created_at, id);
    CREATE INDEX events_deadline ON events (deadline) WHERE status = 'pending';
    CREATE INDEX events_requester ON events (requested_by, status);
    CREATE INDEX events_escalation ON events (next_escalation) WHERE status = 'pending';
    CREATE INDEX events_open ON events (status, assigned);
    ALTER TABLE audit ADD COLUMN alg TEXT NOT NULL DEFAULT 'sha256';
    """, postgresql="""
    ALTER TABLE events DROP CONSTRAINT events_key_key;
    ALTER TABLE events ADD CONSTRAINT events_requester_key UNIQUE (requested_by, key);
    ALTER TABLE audit ADD COLUMN alg TEXT NOT NULL DEFAULT 'sha256';
    """),
    # 5 (issue 13, part 3 "channels"): engine-relayed answers are
    # marked relayed and unverified; the relays recorded before this (channels prefect-ui,
    # temporal-ui, flyte-ui) move over as relayed from that engine, unverified
    Migration(both="""
    ALTER TABLE responses ADD COLUMN relayed_from TEXT;
    ALTER TABLE responses ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE decisions ADD COLUMN relayed_from TEXT;
    ALTER TABLE decisions ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
    UPDATE responses SET relayed_from = substr(channel, 1, length(channel) - 3), verified = 0
        WHERE channel IN ('prefect-ui', 'temporal-ui', 'flyte-ui');
    UPDATE decisions SET relayed_from = substr(channel, 1, length(channel) - 3), verified = 0
        WHERE channel IN ('prefect-ui', 'temporal-ui', 'flyte-ui');
    """),
    # 6 (issue 13, part 2): tokens get a public id, a name, expiry, last use and revocation;
    # browser sessions and one-time login links live here (hashed), not in a hub's memory.
    # Existing tokens keep working: their id is derived from the hash they already have.
    Migration(both="""
    ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN name TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at {real};
    ALTER TABLE tokens ADD COLUMN last_used_at {real};
    ALTER TABLE tokens ADD COLUMN revoked_at {real};
    UPDATE tokens SET id = 'tk_' || substr(hash, 1, 16);
    CREATE UNIQUE INDEX tokens_id ON tokens (id);
    CREATE TABLE token_generation (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        value INTEGER NOT NULL                -- moves on at every revocation
    );
    INSERT INTO token_generation (one, value) VALUES (1, 0);
    CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,                -- SHA-256 of the cookie's session id
        token_id TEXT NOT NULL REFERENCES tokens (id),
        csrf TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL
    );
    CREATE INDEX sessions_token ON sessions (token_id);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE login_links (
        hash TEXT PRIMARY KEY,                -- SHA-256 of the one-time code
        token_id TEXT NOT NULL REFERENCES tokens (id),
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL
    );
    CREATE INDEX login_links_token ON login_links (token_id);
    CREATE INDEX login_links_expiry ON login_links (expires_at);
    """),
    # 7 (issue 13 follow-up "target"): the run an event's resumer would push into, so another
    # identity cannot aim a decision at it. Older rows keep NULL: nothing is computed for them.
    Migration(both="""
    ALTER TABLE events ADD COLUMN resume_target TEXT;
    CREATE INDEX events_resume_target ON events (resume_target, requested_by)
        WHERE resume_target IS NOT NULL;
    """),
    # 8 (issue 18, metrics): audit completeness reads recent decisions by their time
    Migration(both="""
    CREATE INDEX decisions_at ON decisions (at);
    """),
    # 9 (issue 19, amend): a decision keeps the value the workflow proposed beside the answer,
    # and whether the reviewer amended it. Older rows: no proposal, not amended.
    Migration(both="""
    ALTER TABLE decisions ADD COLUMN proposal TEXT;
    ALTER TABLE decisions ADD COLUMN amended INTEGER NOT NULL DEFAULT 0;
    """),
    # 10 (issue 22, evidence): an event's payload digest, beside its key so the decision write
    # reads both with its compare-and-set; a decision's digest, signing key id and signature.
    # Older rows keep NULL: they were never signed, and clients refuse them as unsigned.
    Migration(both="""
    ALTER TABLE events ADD COLUMN digest TEXT;
    ALTER TABLE decisions ADD COLUMN digest TEXT;
    ALTER TABLE decisions ADD COLUMN kid TEXT;
    ALTER TABLE decisions ADD COLUMN signature TEXT;
    """),
    # 11 (issue 21, reviewers at work): the signed one-click answer links spent (a link is
    # signed, not stored: only its use is), and the reminders sent, once per event and step
    # across replicas and restarts; ``reminded`` counts an event's steps done or skipped and
    # ``next_reminder`` is when its next one falls due, so a look reads only what is due
    Migration(both="""
    CREATE TABLE answer_links_used (
        id TEXT PRIMARY KEY,                  -- SHA-256 of the link's signature
        event_id TEXT NOT NULL REFERENCES events (id),
        recipient TEXT NOT NULL,
        used_at {real} NOT NULL
    );
    CREATE INDEX answer_links_used_event ON answer_links_used (event_id);
    CREATE TABLE reminders (
        event_id TEXT NOT NULL REFERENCES events (id),
        step INTEGER NOT NULL,                -- index into the hub's reminder offsets
        sent_at {real} NOT NULL,
        PRIMARY KEY (event_id, step)
    );
    ALTER TABLE events ADD COLUMN reminded INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN next_reminder {real};  -- NULL: not planned yet
    CREATE INDEX events_reminder ON events (next_reminder, reminded) WHERE status = 'pending';
    """),
    # 12 (issue 21): delegation and out of office: a reviewer's events created in a period are
    # also assigned to a delegate (a user or a group); ending one early sets ``ended_at``
    Migration(both="""
    CREATE TABLE delegations (
        id TEXT PRIMARY KEY,
        delegator TEXT NOT NULL,
        delegate TEXT NOT NULL,
        starts_at {real} NOT NULL,
        ends_at {real} NOT NULL,
        reason TEXT,
        created_by TEXT NOT NULL,
        created_at {real} NOT NULL,
        ended_at {real}
    );
    CREATE INDEX delegations_active ON delegations (ends_at) WHERE ended_at IS NULL;
    CREATE INDEX delegations_delegator ON delegations (delegator, ends_at);
    """),
    # 13 (issue 21, Slack): signed requests seen, so a replayed one is refused on any replica
    Migration(both="""
    CREATE TABLE seen_requests (
        id TEXT PRIMARY KEY,                  -- SHA-256 of the request's signature
        seen_at {real} NOT NULL
    );
    CREATE INDEX seen_requests_at ON seen_requests (seen_at);
    """),
    # 14 (issue 21, load balancing): the member a balanced group event is given to (also in
    # its body), each assignment in order, and where each group's next turn starts, moved in
    # the write transaction so replicas share one rotation
    Migration(both="""
    ALTER TABLE events ADD COLUMN assignee TEXT;
    CREATE INDEX events_assignee ON events (assignee)
        WHERE status = 'pending' AND assignee IS NOT NULL;
    CREATE TABLE assignments (
        event_id TEXT NOT NULL REFERENCES events (id),
        turn INTEGER NOT NULL,                -- 0 at creation, then one per re-assignment
        grp TEXT NOT NULL,
        member TEXT NOT NULL,
        strategy TEXT NOT NULL,
        added INTEGER NOT NULL,               -- 1: the member was made an assignee for it
        reason TEXT NOT NULL,
        at {real} NOT NULL,
        PRIMARY KEY (event_id, turn)
    );
    CREATE TABLE balance_turns (
        grp TEXT PRIMARY KEY,
        next_turn INTEGER NOT NULL            -- where the next turn starts in the members
    );
    """),
    # 15: any page of a reviewer's inbox is a merge of ordered index ranges, one for the events
    # open to anyone and one per principal, each read only as far as the page needs: an
    # assignment carries its event's status and sort key (copied when it is written; the
    # status kept in step by a trigger, which an event open to anyone, with no assignments,
    # skips), so no page reads the assignments of decided events
    Migration(both="""
    ALTER TABLE event_assignees ADD COLUMN status TEXT;
    ALTER TABLE event_assignees ADD COLUMN sort_priority INTEGER;
    ALTER TABLE event_assignees ADD COLUMN created_at {real};
    UPDATE event_assignees SET (status, sort_priority, created_at) =
        (SELECT status, sort_priority, created_at FROM events
         WHERE events.id = event_assignees.event_id);
    CREATE INDEX event_assignees_order
        ON event_assignees (principal, status, sort_priority, created_at, event_id);
    CREATE INDEX events_anyone_order ON events (status, sort_priority, created_at, id)
        WHERE assigned = 0;
    {assignees_follow_status}
    """),
]


def _render(migration: Migration, own: str, words: dict[str, str]) -> str:
    return own or migration.both.format(**words)


def for_sqlite() -> list[str]:
    """The migrations as SQLite scripts."""
    return [_render(m, m.sqlite, _SQLITE) for m in MIGRATIONS]


def for_postgresql() -> list[str]:
    """The migrations as PostgreSQL scripts."""
    return [_render(m, m.postgresql, _POSTGRESQL) for m in MIGRATIONS]
