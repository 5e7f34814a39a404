-- Migration 12: a feed of token changes, so that servers may cache the
-- tokens they have confirmed (host/auth/token_cache.h) and still see a
-- revocation at once, wherever it was made (the API, `quern token revoke`,
-- SQL by hand).
--
-- Any UPDATE of a token's row other than its last_used_at (touched once a
-- minute by authentication: no notification for that), and any DELETE,
-- NOTIFYs channel quern_tokens with the token's id; a TRUNCATE NOTIFYs it
-- with an empty payload (forget every token). The channel's name must stay
-- identical to auth::kTokensChannel in host/auth/tokens.h.

CREATE FUNCTION quern.token_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('quern_tokens', '');
  ELSIF TG_OP = 'DELETE'
     OR to_jsonb(OLD) - 'last_used_at' IS DISTINCT FROM to_jsonb(NEW) - 'last_used_at' THEN
    PERFORM pg_notify('quern_tokens', OLD.id);
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER token_changed AFTER UPDATE OR DELETE ON quern.tokens
  FOR EACH ROW EXECUTE FUNCTION quern.token_changed();
CREATE TRIGGER tokens_truncated AFTER TRUNCATE ON quern.tokens
  FOR EACH STATEMENT EXECUTE FUNCTION quern.token_changed();
