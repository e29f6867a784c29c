-- Single sign-on. A user signed in through an OpenID Connect provider is linked to it by
-- the provider's name (as configured) and the subject it asserts, never by email alone:
-- emails get reassigned, a subject never does.
CREATE TABLE user_identities (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  provider      text NOT NULL,
  subject       text NOT NULL,
  -- The email the provider asserted at the last sign-in, for admins; never used to link.
  email         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz,
  CONSTRAINT user_identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- One-time codes handing a finished sign-in to the front end, which exchanges one at the
-- token endpoint (grant_type=authorization_code); tokens never travel in a URL. Stored
-- hashed, deleted when used: the DELETE ... RETURNING that consumes one is the single use.
CREATE TABLE login_codes (
  code_hash      text PRIMARY KEY,
  user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The session (refresh-token family) the sign-in started, named in its audit events.
  family_id      uuid NOT NULL,
  redirect_uri   text NOT NULL,
  -- The front end's own PKCE challenge (S256), when it sent one.
  code_challenge text,
  expires_at     timestamptz NOT NULL
);
CREATE INDEX login_codes_expires_idx ON login_codes (expires_at);

-- Users created by single sign-on have no password: only their provider signs them in.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
