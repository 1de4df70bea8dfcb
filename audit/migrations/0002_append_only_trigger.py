"""Make the audit table append-only in the database itself (PostgreSQL only).

A statement-level trigger rejects every UPDATE, DELETE and TRUNCATE on ``audit_auditentry`` unless the current
transaction has set ``jobops.audit_prune = on`` (``SET LOCAL jobops.audit_prune = on`` or
``set_config('jobops.audit_prune', 'on', true)``). Only ``audit.services.audit_prune`` (the ``prune_audit``
command) sets it, so application code, the admin, a stray ``QuerySet.update()`` or a hand-typed ``DELETE`` cannot
rewrite history. INSERT is untouched. This guards against mistakes and against the application's own code paths;
it is not a defence against a database superuser, who can drop the trigger.

Tests: Django's ``flush`` (run by pytest-django after every ``transaction=True`` test) TRUNCATEs all tables, which
the trigger would reject. ``audit.testing.audit_flush_allowed`` (a session fixture in ``tests/conftest.py``) makes
the test run's flush set the same flag in its own transaction; nothing else in the test run is exempt, so tests on
PostgreSQL still see the trigger reject every other UPDATE, DELETE and TRUNCATE.

SQLite (the embedded default) has no such settings; there the rule is kept by the code alone.
"""

from django.db import migrations

TABLE = "audit_auditentry"
FUNCTION = "audit_auditentry_append_only"

CREATE = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('jobops.audit_prune', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on {TABLE} rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Entries are deleted only by the prune_audit management command.';
END;
$$;

DROP TRIGGER IF EXISTS {FUNCTION} ON {TABLE};
CREATE TRIGGER {FUNCTION}
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {FUNCTION} ON {TABLE};
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def _run_on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_run_on_postgresql(CREATE), _run_on_postgresql(DROP), elidable=False),
    ]
