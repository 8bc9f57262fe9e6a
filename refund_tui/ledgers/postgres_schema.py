"""The team ledger's PostgreSQL schema: versioned migrations, group roles and their grants.

``MIGRATIONS[n]`` takes a schema from version ``n`` to ``n + 1`` (recorded in
``schema_migrations``); migrations are only ever appended, never edited. ``setup`` runs them
under a transaction-scoped advisory lock, so two hosts never migrate at once.

What the database itself guarantees, whatever a client does:
- append-only: no app role holds UPDATE, DELETE or TRUNCATE on attempts, events, notices,
  double refunds, batch rows, finding acknowledgements or triage (claims and notes),
  and triggers refuse them even to the owner (a kept notice is matched later only through
  ``match_kept_notice``, which can do nothing else);
- identity: ``recorded_by`` on every attempt, event, notice, claim and note is
  ``session_user``, the authenticated login, set by a trigger whatever the client sends;
- the receiver role records notices and their ``webhook``/``flag`` events only;
- ``current_state`` is written only by the trigger that derives it from events;
- four eyes and daily limits (``_V4``, ``core/approvals``): what the approval rules forbid is
  refused here, whatever the client sends.
- the hash chain (``chain``): every append-only row is linked by a trigger, serialised on
  the row lock of ``chain_head``, whoever inserts it.
"""

from __future__ import annotations

from refund_tui.ledgers import chain
from refund_tui.ledgers.audit import client_columns

VIEWER = "refund_tui_viewer"
OPERATOR = "refund_tui_operator"
RECEIVER = "refund_tui_receiver"
#: An operator who may also approve or deny other roles' refunds awaiting approval.
APPROVER = "refund_tui_approver"
ROLES = (VIEWER, OPERATOR, RECEIVER, APPROVER)
#: SQLSTATEs of the approval rules' refusals (class RT: refund-tui's own).
REFUSED_BY_RULES = "RTA01"
OVER_DAILY_LIMIT = "RTL01"
#: Event sources the receiver role may record (everything else needs the operator role).
RECEIVER_SOURCES = ("webhook", "flag")

#: The statuses the first schema knew, frozen (a migration never changes once released).
_STATUSES = "'pending', 'processing', 'completed', 'failed', 'reversed', 'unknown'"


def _append_only(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION refuse_change()""",
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()""",
    )


def _identity(table: str) -> str:
    return f"""CREATE TRIGGER {table}_recorded_by BEFORE INSERT ON {table}
        FOR EACH ROW EXECUTE FUNCTION set_recorded_by()"""


_V1 = (
    """CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% are append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE FUNCTION set_recorded_by() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.recorded_by := session_user;
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION guard_event_source() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.source NOT IN ({", ".join(f"'{s}'" for s in RECEIVER_SOURCES)})
           AND NOT pg_has_role(session_user, '{OPERATOR}', 'USAGE') THEN
            RAISE EXCEPTION 'role % may record only webhook events', session_user
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TABLE attempts (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        attempt_id text COLLATE "C" NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        profile text NOT NULL,
        environment text NOT NULL CHECK (environment IN ('sandbox', 'live')),
        provider text NOT NULL,
        payment_reference text NOT NULL,
        amount_minor bigint NOT NULL CHECK (amount_minor > 0),
        currency text NOT NULL,
        phone text NOT NULL,
        country_id text,
        reason text NOT NULL,
        webhook_url text,
        idempotency_key text,
        external_reference text NOT NULL,
        request_method text NOT NULL,
        request_path text NOT NULL,
        request_body text NOT NULL,
        operator_name text NOT NULL,
        operator_uid bigint NOT NULL,
        hostname text NOT NULL,
        ssh_client text,
        pid bigint NOT NULL,
        app_version text NOT NULL,
        retry_of text COLLATE "C" REFERENCES attempts (attempt_id),
        recorded_by text NOT NULL DEFAULT session_user
    )""",
    "CREATE INDEX attempts_payment ON attempts (provider, payment_reference)",
    "CREATE INDEX attempts_created ON attempts (created_at)",
    """CREATE UNIQUE INDEX attempts_idempotency_key ON attempts (provider, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    "CREATE UNIQUE INDEX attempts_one_retry ON attempts (retry_of) WHERE retry_of IS NOT NULL",
    "CREATE INDEX attempts_external_reference ON attempts (provider, external_reference)",
    f"""CREATE TABLE events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        attempt_id text COLLATE "C" NOT NULL REFERENCES attempts (attempt_id),
        at timestamptz NOT NULL,
        status text NOT NULL CHECK (status IN ({_STATUSES})),
        source text NOT NULL,
        provider_reference text,
        failure_reason text,
        raw_code text,
        raw_message text,
        http_status integer,
        note text,
        recorded_by text NOT NULL DEFAULT session_user
    )""",
    "CREATE INDEX events_attempt ON events (attempt_id, id)",
    "CREATE INDEX events_at ON events (at)",
    """CREATE TABLE current_state (
        attempt_seq bigint PRIMARY KEY REFERENCES attempts (seq),
        status text NOT NULL,
        provider_reference text,
        failure_reason text,
        raw_code text,
        raw_message text,
        updated_at timestamptz NOT NULL,
        flagged boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX current_state_status ON current_state (status, attempt_seq)",
    "CREATE INDEX current_state_reference ON current_state (provider_reference)",
    """CREATE FUNCTION derive_current_state() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM set_config('refund_tui.deriving', 'on', true);
        INSERT INTO current_state AS c (attempt_seq, status, provider_reference, failure_reason,
                                        raw_code, raw_message, updated_at, flagged)
        VALUES ((SELECT seq FROM attempts WHERE attempt_id = NEW.attempt_id), NEW.status,
                NEW.provider_reference, NEW.failure_reason, NEW.raw_code, NEW.raw_message,
                NEW.at, NEW.source = 'flag')
        ON CONFLICT (attempt_seq) DO UPDATE SET
            status = excluded.status,
            provider_reference = coalesce(excluded.provider_reference, c.provider_reference),
            failure_reason = excluded.failure_reason,
            raw_code = excluded.raw_code,
            raw_message = excluded.raw_message,
            updated_at = excluded.updated_at,
            flagged = c.flagged OR excluded.flagged;
        PERFORM set_config('refund_tui.deriving', 'off', true);
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION guard_current_state() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('refund_tui.deriving', true) = 'on' THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'current_state is derived from events: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER current_state_derived_only BEFORE INSERT OR UPDATE OR DELETE
        ON current_state FOR EACH ROW EXECUTE FUNCTION guard_current_state()""",
    """CREATE TRIGGER events_to_current_state AFTER INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION derive_current_state()""",
    """CREATE TABLE notices (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at timestamptz NOT NULL,
        provider text NOT NULL,
        identity text NOT NULL,
        event text NOT NULL,
        refund_reference text,
        payment_reference text,
        tag text,
        status text,
        failure_reason text,
        outcome text NOT NULL
            CHECK (outcome IN ('applied', 'unchanged', 'stale', 'kept', 'ignored', 'conflict')),
        attempt_id text COLLATE "C" REFERENCES attempts (attempt_id),
        body text NOT NULL,
        recorded_by text NOT NULL DEFAULT session_user,
        UNIQUE (provider, identity)
    )""",
    "CREATE INDEX notices_kept ON notices (id) WHERE outcome = 'kept'",
    "CREATE INDEX notices_attempt ON notices (attempt_id) WHERE attempt_id IS NOT NULL",
    # The one change a notice may see: a kept one matched to its attempt, by this function.
    """CREATE FUNCTION match_kept_notice(notice_id bigint, new_outcome text, matched text)
    RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    BEGIN
        PERFORM set_config('refund_tui.matching', 'on', true);
        UPDATE notices SET outcome = new_outcome, attempt_id = matched
            WHERE id = notice_id AND outcome = 'kept';
        PERFORM set_config('refund_tui.matching', 'off', true);
        RETURN FOUND;
    END $$""",
    """CREATE FUNCTION guard_notice() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND current_setting('refund_tui.matching', true) = 'on'
           AND OLD.outcome = 'kept' AND NEW.id = OLD.id AND NEW.received_at = OLD.received_at
           AND NEW.identity = OLD.identity AND NEW.body = OLD.body
           AND NEW.recorded_by = OLD.recorded_by THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'notices are kept as received: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER notices_guard BEFORE UPDATE OR DELETE ON notices
        FOR EACH ROW EXECUTE FUNCTION guard_notice()""",
    """CREATE TRIGGER notices_no_truncate BEFORE TRUNCATE ON notices
        FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()""",
    # The ledger's own identity, and second executions of an attempt's request found on a
    # provider's record (double refunds), each recorded once.
    """CREATE TABLE ledger_identity (
        only_row integer PRIMARY KEY CHECK (only_row = 1),
        ledger_id text NOT NULL DEFAULT md5(gen_random_uuid()::text)
    )""",
    "INSERT INTO ledger_identity (only_row) VALUES (1)",
    """CREATE TABLE double_refunds (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        attempt_id text COLLATE "C" NOT NULL REFERENCES attempts (attempt_id),
        found_at timestamptz NOT NULL,
        provider_reference text NOT NULL,
        second_reference text NOT NULL,
        recorded_by text NOT NULL DEFAULT session_user,
        UNIQUE (attempt_id, second_reference)
    )""",
    """CREATE FUNCTION notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(TG_TABLE_SCHEMA, TG_TABLE_NAME);
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER events_notify AFTER INSERT ON events
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    """CREATE TRIGGER notices_notify AFTER INSERT OR UPDATE ON notices
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    """CREATE TRIGGER double_refunds_notify AFTER INSERT ON double_refunds
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    *_append_only("attempts"),
    *_append_only("events"),
    *_append_only("double_refunds"),
    *_append_only("ledger_identity"),
    _identity("attempts"),
    _identity("events"),
    _identity("notices"),
    _identity("double_refunds"),
    """CREATE TRIGGER events_source_guard BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION guard_event_source()""",
)

#: Which attempt each row of a batch file became, written with the attempt's intent: a row
#: (batch: the hash of the file's rows) is recorded at most once, however often it is run;
#: and the reconciliation findings operators acknowledged, with their notes (newest wins).
_V2 = (
    """CREATE TABLE batch_rows (
        batch_id text COLLATE "C" NOT NULL,
        row integer NOT NULL CHECK (row > 0),
        attempt_id text COLLATE "C" NOT NULL UNIQUE REFERENCES attempts (attempt_id),
        recorded_by text NOT NULL DEFAULT session_user,
        PRIMARY KEY (batch_id, row)
    )""",
    """CREATE TABLE finding_acks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        finding_id text NOT NULL,
        kind text NOT NULL,
        provider text NOT NULL,
        payment_reference text NOT NULL,
        note text NOT NULL CHECK (length(note) > 0),
        acked_at timestamptz NOT NULL,
        operator_name text NOT NULL,
        hostname text NOT NULL,
        recorded_by text NOT NULL DEFAULT session_user
    )""",
    "CREATE INDEX finding_acks_finding ON finding_acks (finding_id, id)",
    """CREATE TRIGGER finding_acks_notify AFTER INSERT ON finding_acks
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    *_append_only("batch_rows"),
    *_append_only("finding_acks"),
    _identity("batch_rows"),
    _identity("finding_acks"),
)

#: Triage as a team: claims ("I'm on it"), their release or take-over, and notes on attempts,
#: append-only; the claim in force is the newest claim or release of the attempt. Who took
#: over whose claim is found by the database (``took_over``), like ``recorded_by``.
_V3 = (
    """CREATE TABLE triage (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        attempt_id text COLLATE "C" NOT NULL REFERENCES attempts (attempt_id),
        at timestamptz NOT NULL,
        action text NOT NULL CHECK (action IN ('claim', 'release', 'note')),
        note text CHECK (action <> 'note' OR coalesce(length(btrim(note)), 0) > 0),
        took_over text,
        operator_name text NOT NULL,
        operator_uid bigint NOT NULL,
        hostname text NOT NULL,
        ssh_client text,
        recorded_by text NOT NULL DEFAULT session_user
    )""",
    "CREATE INDEX triage_attempt ON triage (attempt_id, id)",
    "CREATE INDEX attempts_recorded_by ON attempts (recorded_by, seq)",  # mine, by:NAME
    """CREATE FUNCTION set_took_over() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        holder text;
    BEGIN
        NEW.took_over := NULL;
        IF NEW.action IN ('claim', 'release') THEN
            SELECT CASE WHEN t.action = 'claim' THEN t.recorded_by END INTO holder
                FROM triage t WHERE t.attempt_id = NEW.attempt_id
                AND t.action IN ('claim', 'release') ORDER BY t.id DESC LIMIT 1;
            IF holder IS DISTINCT FROM session_user THEN
                NEW.took_over := holder;
            END IF;
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER triage_took_over BEFORE INSERT ON triage
        FOR EACH ROW EXECUTE FUNCTION set_took_over()""",
    """CREATE TRIGGER triage_notify AFTER INSERT ON triage
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    *_append_only("triage"),
    _identity("triage"),
)

_ALL_STATUSES = f"{_STATUSES}, 'awaiting_approval', 'denied', 'cancelled'"
_CLOSED = "'failed', 'denied', 'cancelled'"


def _refuse(message: str, *args: str) -> str:
    """PL/pgSQL raising one of the rules' refusals (``message`` with ``%`` placeholders)."""
    return f"RAISE EXCEPTION '{message}', {', '.join(args)} USING ERRCODE = '{REFUSED_BY_RULES}'"


def _daily_limit(join: str, still_open: str, replace: str = "CREATE ") -> str:
    """The trigger refusing a role's attempt over its daily limit, counting the day's attempts
    that ``still_open`` (``_V4``: those with an open state; ``_V6``: also those recorded
    without any event yet)."""
    return f"""{replace}FUNCTION check_daily_limit() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        cap bigint := ((rules_now()).daily_limit ->> NEW.currency)::bigint;
        day_start timestamptz := date_trunc('day', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        used bigint;
    BEGIN
        IF cap IS NULL OR owns_ledger(TG_TABLE_SCHEMA) THEN
            RETURN NEW;
        END IF;
        IF abs(extract(epoch FROM NEW.created_at - clock_timestamp())) > 300 THEN
            {_refuse("an attempt under a daily limit is recorded at the database''s time, not %",
                     "NEW.created_at")};
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended('limit:' || session_user || ':' || NEW.currency, 0));
        SELECT coalesce(sum(a.amount_minor), 0) INTO used
            FROM attempts a {join} current_state c ON c.attempt_seq = a.seq
            WHERE a.recorded_by = session_user AND a.currency = NEW.currency
            AND a.created_at >= day_start AND {still_open};
        IF used + NEW.amount_minor > cap THEN
            RAISE EXCEPTION 'over the daily limit of role %', session_user
                USING ERRCODE = '{OVER_DAILY_LIMIT}',
                DETAIL = format('%s %s %s', NEW.currency, cap, greatest(cap - used, 0));
        END IF;
        RETURN NEW;
    END $$"""


#: Four eyes and daily limits, enforced by the database (``core/approvals``): the rules (only
#: the owner writes them; each change a new row), the decisions on refunds awaiting approval,
#: and triggers that refuse, whatever the client, an intent above the threshold not recorded
#: as awaiting approval, any move out of awaiting approval without its decision, a decision
#: by a role that may not take it, and a role's refunds over its daily limit.
_V4 = (
    "ALTER TABLE events DROP CONSTRAINT events_status_check",
    f"ALTER TABLE events ADD CONSTRAINT events_status_check CHECK (status IN ({_ALL_STATUSES}))",
    """CREATE TABLE approval_rules (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        set_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        above jsonb NOT NULL,
        expires_hours integer NOT NULL CHECK (expires_hours > 0),
        daily_limit jsonb NOT NULL,
        exponents jsonb NOT NULL DEFAULT '{}',  -- currency -> decimals, of the rules' currencies
        recorded_by text NOT NULL DEFAULT session_user
    )""",
    """CREATE FUNCTION rules_now() RETURNS approval_rules LANGUAGE sql STABLE AS $$
        SELECT * FROM approval_rules ORDER BY id DESC LIMIT 1
    $$""",
    # The schema's owner (who can alter it anyway) brings history in (`ledger import`): old
    # refunds are kept as they were, whatever today's rules say.
    """CREATE FUNCTION owns_ledger(schema_name name) RETURNS boolean LANGUAGE sql STABLE AS $$
        SELECT pg_has_role(session_user, nspowner, 'MEMBER') FROM pg_namespace WHERE nspname = schema_name
    $$""",
    """CREATE FUNCTION intent_status(amount bigint, cur text) RETURNS text
    LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN amount > ((rules_now()).above ->> cur)::bigint
                    THEN 'awaiting_approval' ELSE 'pending' END
    $$""",
    """CREATE TABLE approvals (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        attempt_id text COLLATE "C" NOT NULL UNIQUE REFERENCES attempts (attempt_id),
        decision text NOT NULL CHECK (decision IN ('approved', 'denied', 'cancelled')),
        reason text,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        operator_name text NOT NULL,
        hostname text NOT NULL,
        ssh_client text,
        recorded_by text NOT NULL DEFAULT session_user,
        CHECK (decision <> 'denied' OR length(btrim(coalesce(reason, ''))) > 0)
    )""",
    f"""CREATE FUNCTION check_decision() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        requested attempts;
        state text;
        hours integer := coalesce((rules_now()).expires_hours, 24);
    BEGIN
        NEW.at := clock_timestamp();
        PERFORM pg_advisory_xact_lock(hashtextextended('attempt:' || NEW.attempt_id, 0));
        SELECT * INTO requested FROM attempts WHERE attempt_id = NEW.attempt_id;
        SELECT status INTO state FROM current_state WHERE attempt_seq = requested.seq;
        IF state IS DISTINCT FROM 'awaiting_approval' THEN
            {_refuse("refund % is not awaiting approval: it is %", "left(NEW.attempt_id, 8)",
                     "coalesce(replace(state, '_', ' '), 'unknown')")};
        END IF;
        IF NEW.decision = 'cancelled' THEN
            IF session_user <> requested.recorded_by THEN
                {_refuse("only its requester (%) may cancel refund %", "requested.recorded_by",
                         "left(NEW.attempt_id, 8)")};
            END IF;
            RETURN NEW;
        END IF;
        IF NOT pg_has_role(session_user, '{APPROVER}', 'USAGE') THEN
            {_refuse(f"role % does not hold {APPROVER}: it may not approve or deny refunds",
                     "session_user")};
        END IF;
        IF session_user = requested.recorded_by THEN
            {_refuse("role % requested refund % itself: another approver must decide (four eyes)",
                     "session_user", "left(NEW.attempt_id, 8)")};
        END IF;
        IF NEW.decision = 'approved'
           AND clock_timestamp() >= requested.created_at + make_interval(hours => hours) THEN
            {_refuse("the approval request of refund % lapsed at % UTC (after % h): request it again",
                     "left(NEW.attempt_id, 8)",
                     "to_char((requested.created_at + make_interval(hours => hours)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')",
                     "hours")};
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE FUNCTION apply_decision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO events (attempt_id, at, status, source, note)
        VALUES (NEW.attempt_id, NEW.at,
                CASE NEW.decision WHEN 'approved' THEN 'pending' ELSE NEW.decision END,
                'approval',
                NEW.decision || ' by ' || session_user
                    || coalesce(': ' || nullif(btrim(NEW.reason), ''), ''));
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION guard_approval_stage() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        requested attempts;
        state text;
        decided text;
        allowed text;
        threshold bigint;
        hours integer := coalesce((rules_now()).expires_hours, 24);
    BEGIN
        SELECT * INTO requested FROM attempts WHERE attempt_id = NEW.attempt_id;
        SELECT status INTO state FROM current_state WHERE attempt_seq = requested.seq;
        IF state IS NULL THEN  -- the intent
            IF owns_ledger(TG_TABLE_SCHEMA) THEN
                RETURN NEW;
            END IF;
            threshold := ((rules_now()).above ->> requested.currency)::bigint;
            IF requested.amount_minor > threshold AND NEW.status <> 'awaiting_approval' THEN
                {_refuse("a refund above the approval threshold in % can only be recorded as "
                         "awaiting approval", "requested.currency")};
            END IF;
            RETURN NEW;
        END IF;
        IF state = 'awaiting_approval' AND NEW.status <> 'awaiting_approval' THEN
            SELECT decision INTO decided FROM approvals WHERE attempt_id = NEW.attempt_id;
            allowed := CASE decided WHEN 'approved' THEN 'pending' ELSE decided END;
            IF NEW.status = allowed
               OR (NEW.status = 'cancelled' AND decided IS NULL AND NEW.source = 'lapsed'
                   AND clock_timestamp() >= requested.created_at + make_interval(hours => hours)) THEN
                RETURN NEW;
            END IF;
            {_refuse("refund % awaits approval: it cannot become % before an approver decides",
                     "left(NEW.attempt_id, 8)", "NEW.status")};
        END IF;
        IF NEW.status IN ('awaiting_approval', 'denied', 'cancelled') AND NEW.status <> state THEN
            {_refuse("refund % is %: it cannot become %", "left(NEW.attempt_id, 8)", "state",
                     "NEW.status")};
        END IF;
        RETURN NEW;
    END $$""",
    _daily_limit("JOIN", f"c.status NOT IN ({_CLOSED})"),
    # The rules judge amount_minor, the provider pays the body's amount: where a rule applies,
    # the two must agree, so a modified client cannot record a small refund that sends a large one.
    f"""CREATE FUNCTION check_request_amount() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        places integer := ((rules_now()).exponents ->> NEW.currency)::integer;
        sent numeric;
    BEGIN
        IF places IS NULL OR owns_ledger(TG_TABLE_SCHEMA) THEN
            RETURN NEW;
        END IF;
        BEGIN
            sent := (NEW.request_body::jsonb ->> 'amount')::numeric;
        EXCEPTION WHEN others THEN
            sent := NULL;
        END;
        IF sent IS NULL OR sent * 10 ^ places <> NEW.amount_minor THEN
            {_refuse("the request sends % %, not the % minor units the attempt records",
                     "coalesce(sent::text, 'no amount')", "NEW.currency", "NEW.amount_minor")};
        END IF;
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION lapse_waiting() RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
        hours integer := coalesce((rules_now()).expires_hours, 24);
        lapsed integer;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM attempts a JOIN current_state c ON c.attempt_seq = a.seq
                       WHERE c.status = 'awaiting_approval'
                       AND clock_timestamp() >= a.created_at + make_interval(hours => hours)) THEN
            RETURN 0;  -- nothing to write (and a role that may not write is not refused)
        END IF;
        INSERT INTO events (attempt_id, at, status, source, note)
        SELECT a.attempt_id, clock_timestamp(), 'cancelled', 'lapsed',
               'not approved within ' || hours || ' h: lapsed, never sent'
        FROM attempts a JOIN current_state c ON c.attempt_seq = a.seq
        WHERE c.status = 'awaiting_approval'
        AND clock_timestamp() >= a.created_at + make_interval(hours => hours)
        AND pg_try_advisory_xact_lock(hashtextextended('attempt:' || a.attempt_id, 0));
        GET DIAGNOSTICS lapsed = ROW_COUNT;
        RETURN lapsed;
    END $$""",
    """CREATE TRIGGER approvals_check BEFORE INSERT ON approvals
        FOR EACH ROW EXECUTE FUNCTION check_decision()""",
    """CREATE TRIGGER approvals_apply AFTER INSERT ON approvals
        FOR EACH ROW EXECUTE FUNCTION apply_decision()""",
    """CREATE TRIGGER events_approval_stage BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION guard_approval_stage()""",
    """CREATE TRIGGER attempts_daily_limit BEFORE INSERT ON attempts
        FOR EACH ROW EXECUTE FUNCTION check_daily_limit()""",
    """CREATE TRIGGER attempts_request_amount BEFORE INSERT ON attempts
        FOR EACH ROW EXECUTE FUNCTION check_request_amount()""",
    """CREATE TRIGGER approvals_notify AFTER INSERT ON approvals
        FOR EACH STATEMENT EXECUTE FUNCTION notify_change()""",
    *_append_only("approvals"),
    *_append_only("approval_rules"),
    _identity("approvals"),
    _identity("approval_rules"),
)


def canonical_row(table: str, row: str) -> str:
    """A row's canonical form (``row``: NEW, or a loop's record), as ``verify`` reads it."""
    return chain.canonical_sql(chain.pg_text(column, row) for column in chain.hashed(table, postgres=True))


def _link_existing(table: str) -> tuple[str, ...]:
    """``table``'s link columns, and its rows already there linked after the chain's head in
    key order (its triggers set aside meanwhile)."""
    key = chain.CHAINED[table].key
    return (
        f"""ALTER TABLE {table} ADD COLUMN chain_seq bigint, ADD COLUMN prev_hash text,
            ADD COLUMN row_hash text""",
        f"ALTER TABLE {table} DISABLE TRIGGER USER",
        f"""DO $$ DECLARE r record; next_seq bigint; prev text; digest text; BEGIN
            SELECT seq, hash INTO next_seq, prev FROM chain_head;
            FOR r IN SELECT * FROM {table} ORDER BY {key} LOOP
                next_seq := next_seq + 1;
                digest := chain_hash(prev, '{table}', {canonical_row(table, "r")});
                UPDATE {table} SET chain_seq = next_seq, prev_hash = prev, row_hash = digest
                    WHERE {key} = r.{key};
                prev := digest;
            END LOOP;
            UPDATE chain_head SET seq = next_seq, hash = prev;
        END $$""",
        f"ALTER TABLE {table} ENABLE TRIGGER USER",
        f"""ALTER TABLE {table} ALTER COLUMN chain_seq SET NOT NULL,
            ALTER COLUMN prev_hash SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL""",
        f"CREATE UNIQUE INDEX {table}_chain ON {table} (chain_seq)",
    )


def _link_new(table: str) -> tuple[str, ...]:
    """The triggers linking each new row of ``table``. zz_chain_link is named so that it
    fires after every other BEFORE INSERT trigger (PostgreSQL fires them in name order): it
    hashes the row as it will be stored. zz_chain_head, deferred, moves ``chain_head`` to the
    newest link at commit."""
    return (
        f"""CREATE FUNCTION chain_{table}() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
        BEGIN
            SELECT seq, prev, hash INTO NEW.chain_seq, NEW.prev_hash, NEW.row_hash
                FROM chain_link('{table}', {canonical_row(table, "NEW")});
            RETURN NEW;
        END $$""",
        f"""CREATE TRIGGER zz_chain_link BEFORE INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION chain_{table}()""",
        f"""CREATE CONSTRAINT TRIGGER zz_chain_head AFTER INSERT ON {table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION chain_commit()""",
    )


_V5_CHAINED = (
    "attempts", "events", "notices", "double_refunds", "batch_rows", "finding_acks", "triage",
    "approvals", "approval_rules",
)

#: The tamper-evident trail (``chain``), who recorded each event from where (``audit``) and a
#: decision's outcome. ``chain_link`` takes the row lock of ``chain_head`` (held until the
#: transaction ends, so every host's inserts join one chain in commit order) and links a row
#: after the head, or after the newest link this transaction already added (kept in a
#: transaction-local setting); ``chain_commit`` moves the head at commit: one update per
#: transaction, however many rows it links (a row updated many times in one transaction gets
#: slower at each update). Only the owner may run them (through the triggers): no role moves
#: the head or forges a link by calling them.
_V5 = (
    "ALTER TABLE events ADD COLUMN outcome text",
    *client_columns("events"),
    """CREATE TABLE chain_head (
        only_row integer PRIMARY KEY CHECK (only_row = 1),
        seq bigint NOT NULL,
        hash text NOT NULL
    )""",
    f"INSERT INTO chain_head VALUES (1, 0, '{chain.GENESIS}')",
    """CREATE FUNCTION chain_hash(prev text, tbl text, canonical text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT encode(sha256(convert_to(prev || E'\\n' || tbl || canonical, 'UTF8')), 'hex')
    $$""",
    *(statement for table in _V5_CHAINED for statement in _link_existing(table)),
    """CREATE FUNCTION chain_link(tbl text, canonical text, OUT seq bigint, OUT prev text,
                                  OUT hash text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DECLARE tip text[] := string_to_array(current_setting('refund_tui.chain_tip', true), ' ');
    BEGIN
        SELECT h.seq, h.hash INTO seq, prev FROM chain_head h WHERE h.only_row = 1 FOR UPDATE;
        -- After a first link, this transaction's newest link (the head moves at commit). A
        -- client that sets this itself only breaks its own links, as verify reports.
        IF tip[1] = txid_current()::text AND tip[2]::bigint > seq THEN
            seq := tip[2]::bigint;
            prev := tip[3];
        END IF;
        seq := seq + 1;
        hash := chain_hash(prev, tbl, canonical);
        PERFORM set_config('refund_tui.chain_tip', concat_ws(' ', txid_current(), seq, hash), true);
    END $$""",
    """CREATE FUNCTION chain_commit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    DECLARE tip text[] := string_to_array(current_setting('refund_tui.chain_tip', true), ' ');
    BEGIN
        IF tip[1] = txid_current()::text THEN  -- fired for each row, at commit: once is enough
            UPDATE chain_head SET seq = tip[2]::bigint, hash = tip[3]
                WHERE only_row = 1 AND seq < tip[2]::bigint;
        END IF;
        RETURN NULL;
    END $$""",
    *(statement for table in _V5_CHAINED for statement in _link_new(table)),
)

#: Hardening found by an adversarial review (``tests/ledger/test_approvals_attacks.py``):
#: - every function of the schema resolves names in the schema, then pg_temp last: before,
#:   a session's temporary table (any role may create one) named ``approval_rules`` or
#:   ``approvals`` was found first by the rules' triggers, so an operator could record a large
#:   intent as sendable or send a refund on an approval of its own. A later migration that
#:   creates functions ends with ``PIN_SEARCH_PATH`` too;
#: - an attempt recorded without any event yet counts against its role's daily limit;
#: - a request for approval is dated by the database (it lapses ``expires_hours`` later);
#: - a denied or cancelled refund stays so (its requester could record it as pending);
#: - the chain trusts a transaction's tip only when it is that transaction's newest link.
PIN_SEARCH_PATH = """DO $$ DECLARE f regprocedure; BEGIN
    FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END $$"""

_V6 = (
    _daily_limit("LEFT JOIN", f"coalesce(c.status NOT IN ({_CLOSED}), true)", "CREATE OR REPLACE "),
    f"""CREATE FUNCTION check_request_time() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        asked timestamptz := (SELECT created_at FROM attempts WHERE attempt_id = NEW.attempt_id);
    BEGIN
        IF NOT owns_ledger(TG_TABLE_SCHEMA)
           AND abs(extract(epoch FROM asked - clock_timestamp())) > 300 THEN
            {_refuse("a request for approval is recorded at the database''s time, not %", "asked")};
        END IF;
        RETURN NEW;
    END $$""",
    f"""CREATE FUNCTION keep_decision_final() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        state text := (SELECT c.status FROM attempts a JOIN current_state c ON c.attempt_seq = a.seq
                       WHERE a.attempt_id = NEW.attempt_id);
    BEGIN
        IF state IN ('denied', 'cancelled') AND NEW.status <> state THEN
            {_refuse("refund % is %: it cannot become %", "left(NEW.attempt_id, 8)", "state",
                     "NEW.status")};
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER events_decision_final BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION keep_decision_final()""",
    """CREATE TRIGGER events_request_time BEFORE INSERT ON events
        FOR EACH ROW WHEN (NEW.status = 'awaiting_approval') EXECUTE FUNCTION check_request_time()""",
    # The transaction's tip (a setting any client may set) is trusted only when it is the
    # link this transaction last wrote: a forged one moved the head anywhere at commit (to the
    # largest bigint: every later link of every role overflowed).
    """CREATE FUNCTION chain_tip(OUT seq bigint, OUT hash text)
    LANGUAGE plpgsql SECURITY DEFINER AS $$
    DECLARE
        tip text[] := string_to_array(current_setting('refund_tui.chain_tip', true), ' ');
        stored text;
    BEGIN
        IF tip[1] IS DISTINCT FROM txid_current()::text THEN
            RETURN;  -- no link yet in this transaction
        END IF;
        BEGIN
            EXECUTE format('SELECT row_hash FROM %I WHERE chain_seq = $1', tip[4])
                INTO stored USING tip[2]::bigint;
        EXCEPTION WHEN others THEN
            stored := NULL;
        END;
        IF stored IS NULL OR stored <> tip[3] THEN
            RAISE EXCEPTION 'refund_tui.chain_tip is not the newest link of this transaction'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        seq := tip[2]::bigint;
        hash := tip[3];
    END $$""",
    """CREATE OR REPLACE FUNCTION chain_link(tbl text, canonical text, OUT seq bigint,
                                             OUT prev text, OUT hash text)
    LANGUAGE plpgsql SECURITY DEFINER AS $$
    DECLARE mine record := chain_tip();
    BEGIN
        SELECT h.seq, h.hash INTO seq, prev FROM chain_head h WHERE h.only_row = 1 FOR UPDATE;
        IF mine.seq > seq THEN  -- after a first link: this transaction's newest
            seq := mine.seq;
            prev := mine.hash;
        END IF;
        seq := seq + 1;
        hash := chain_hash(prev, tbl, canonical);
        PERFORM set_config('refund_tui.chain_tip', concat_ws(' ', txid_current(), seq, hash, tbl), true);
    END $$""",
    """CREATE OR REPLACE FUNCTION chain_commit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
    DECLARE mine record := chain_tip();
    BEGIN
        UPDATE chain_head SET seq = mine.seq, hash = mine.hash  -- once per transaction is enough
            WHERE only_row = 1 AND seq < mine.seq;
        RETURN NULL;
    END $$""",
    PIN_SEARCH_PATH,
)

_GUARD_V4 = next(statement for statement in _V4 if "FUNCTION guard_approval_stage()" in statement)

#: Rules fail closed on currencies (review finding: the rules key on the attempt's currency,
#: which the client sends, and neither provider's refund body names one): a currency code is
#: three capital letters, and once the rules set any threshold, a refund in a currency they
#: do not name always awaits approval.
_V7 = (
    "ALTER TABLE attempts ADD CONSTRAINT attempts_currency_code CHECK (currency ~ '^[A-Z]{3}$') NOT VALID",
    """CREATE OR REPLACE FUNCTION intent_status(amount bigint, cur text) RETURNS text
    LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN (rules_now()).above IS NULL OR (rules_now()).above = '{}'::jsonb THEN 'pending'
                    WHEN NOT (rules_now()).above ? cur OR amount > ((rules_now()).above ->> cur)::bigint
                    THEN 'awaiting_approval' ELSE 'pending' END
    $$""",
    _GUARD_V4.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    .replace("        threshold bigint;\n", "")
    .replace("            threshold := ((rules_now()).above ->> requested.currency)::bigint;\n", "")
    .replace(
        "IF requested.amount_minor > threshold AND NEW.status <> 'awaiting_approval' THEN",
        "IF intent_status(requested.amount_minor, requested.currency) = 'awaiting_approval'\n"
        "               AND NEW.status <> 'awaiting_approval' THEN",
    ),
    PIN_SEARCH_PATH,
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)

#: Applied after every migration run (idempotent): who may do what in the schema.
GRANTS = (
    "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM PUBLIC",
    f"GRANT USAGE ON SCHEMA {{schema}} TO {VIEWER}, {OPERATOR}, {RECEIVER}",
    f"GRANT SELECT ON ALL TABLES IN SCHEMA {{schema}} TO {VIEWER}, {OPERATOR}, {RECEIVER}",
    f"""GRANT INSERT ON {{schema}}.attempts, {{schema}}.events, {{schema}}.double_refunds,
        {{schema}}.batch_rows, {{schema}}.finding_acks TO {OPERATOR}""",
    f"GRANT INSERT ON {{schema}}.triage TO {OPERATOR}",
    f"GRANT INSERT ON {{schema}}.events, {{schema}}.notices TO {RECEIVER}",
    f"GRANT {OPERATOR} TO {APPROVER}",
    f"GRANT INSERT ON {{schema}}.approvals TO {OPERATOR}",
    f"""GRANT EXECUTE ON FUNCTION {{schema}}.rules_now(), {{schema}}.intent_status(bigint, text),
        {{schema}}.owns_ledger(name),
        {{schema}}.lapse_waiting() TO {VIEWER}, {OPERATOR}, {RECEIVER}""",
    f"""GRANT EXECUTE ON FUNCTION {{schema}}.match_kept_notice(bigint, text, text)
        TO {OPERATOR}, {RECEIVER}""",
)
