-- API processes remember for a few seconds which users are enabled and with which role
-- (api/src/auth_cache.rs). The database announces every change that could make that
-- stale, whoever makes it (any API node, an operator with psql), and they forget.
CREATE FUNCTION jobcenter_notify_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobcenter_users_changed', '');
    RETURN NULL;
END $$;

CREATE TRIGGER users_changed_notify
    AFTER UPDATE OF role, disabled OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION jobcenter_notify_users_changed();

CREATE TRIGGER users_truncated_notify
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION jobcenter_notify_users_changed();
