-- Credentials that end when they should (docs/auth.md, "Sessions"). An access token
-- carries its user's session generation (`gen`) and its own session id (`sid`); it is
-- accepted only while `gen` is the user's current one, or while its `sid` is the one
-- session a password change by the user kept (`kept_session`). Changing or resetting a
-- password bumps the generation, which ends every other access token of the user.
ALTER TABLE users
    ADD COLUMN session_generation integer NOT NULL DEFAULT 0,
    ADD COLUMN kept_session uuid;

-- API processes remember users for a few seconds (V13): a new generation is a change
-- they must hear of, like a role or the disabled flag.
DROP TRIGGER users_changed_notify ON users;
CREATE TRIGGER users_changed_notify
    AFTER UPDATE OF role, disabled, session_generation, kept_session OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION jobcenter_notify_users_changed();
