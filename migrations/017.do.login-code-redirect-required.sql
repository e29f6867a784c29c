-- RFC 6749 §4.1.3: when a sign-in named its redirect_uri, redeeming its one-time code must
-- name the same one. Codes already issued (60 seconds at most) keep the old rule.
ALTER TABLE login_codes ADD COLUMN redirect_uri_required boolean NOT NULL DEFAULT false;
